"""The web pages' fixed strings, English and Korean, one module per area so each area's words live together."""
