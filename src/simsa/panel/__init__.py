"""The expert review panel: rubric scoring, agreement statistics, aggregation, submitted documents."""
