"""The words of the report's "expert panel" section, in English and Korean (merged into `labels.LABELS`).

Kept apart from `panel_section` so `labels` can take them in without importing the section's plotting code.
"""

from __future__ import annotations

PANEL_LABELS: dict[str, tuple[str, str]] = {
    "xp_title": ("Expert panel", "전문가 평가단"),
    "xp_intro": (
        "{n} experts scored the teams' technical reports and training logs on the programme's anchored rubric "
        "({reviews} reviews). Experts are shown as E1, E2, …: the programme does not publish their names.",
        "전문가 {n}명이 사업의 기준 루브릭에 따라 각 팀의 기술 보고서와 학습 로그를 평가했습니다(평가 "
        "{reviews}건). 사업이 전문가 이름을 공개하지 않으므로 E1, E2, …로 표시합니다.",
    ),
    "xp_intro_named": (
        "{n} experts scored the teams' technical reports and training logs on the programme's anchored rubric "
        "({reviews} reviews). The programme publishes the experts' names.",
        "전문가 {n}명이 사업의 기준 루브릭에 따라 각 팀의 기술 보고서와 학습 로그를 평가했습니다(평가 "
        "{reviews}건). 이 사업은 전문가 이름을 공개합니다.",
    ),
    # Agreement
    "xp_agreement": ("Agreement between the experts", "전문가 간 일치도"),
    "xp_alpha": ("Krippendorff's α ({level})", "크리펜도르프 α ({level})"),
    "xp_alpha_interval": ("{pct} bootstrap interval", "{pct} 부트스트랩 구간"),
    "xp_level_interval": ("interval", "등간 척도"),
    "xp_level_ordinal": ("ordinal", "서열 척도"),
    "xp_level_nominal": ("nominal", "명목 척도"),
    "xp_level_ratio": ("ratio", "비율 척도"),
    "xp_verdict_good": (
        "α ≥ 0.800: the experts agreed well; the panel's points can be relied on.",
        "α ≥ 0.800: 전문가들의 평가가 잘 일치했습니다. 평가단 점수를 신뢰할 수 있습니다.",
    ),
    "xp_verdict_tentative": (
        "0.667 ≤ α < 0.800: the experts agreed only tentatively; draw conclusions from the points with care.",
        "0.667 ≤ α < 0.800: 전문가 간 일치가 잠정적인 수준입니다. 이 점수로 결론을 내릴 때 주의하십시오.",
    ),
    "xp_verdict_poor": (
        "α < 0.667: the experts did not agree: read the points with caution.",
        "α < 0.667: 전문가들의 평가가 일치하지 않았습니다. 이 점수는 주의해서 읽으십시오.",
    ),
    "xp_verdict_undefined": (
        "α is not defined: no team was scored by two experts, or every score was the same.",
        "α를 정의할 수 없습니다. 두 명 이상의 전문가가 평가한 팀이 없거나 모든 점수가 같습니다.",
    ),
    "xp_conventions": (
        "α and the ICCs are computed over the experts' final totals (0–100) per team. Krippendorff's conventions: "
        "α ≥ 0.800 reliable, 0.667–0.800 tentative, below 0.667 not to be relied on.",
        "α와 ICC는 팀별 전문가 최종 총점(0–100)으로 계산합니다. 크리펜도르프의 기준: α ≥ 0.800 신뢰 가능, "
        "0.667–0.800 잠정적, 0.667 미만은 신뢰하기 어려움.",
    ),
    "xp_icc_a1": ("ICC(A,1), absolute agreement", "ICC(A,1), 절대 일치도"),
    "xp_icc_c1": ("ICC(C,1), consistency", "ICC(C,1), 일관성"),
    "xp_icc_missing": (
        "The ICCs are not defined: {missing} of {cells} expert × team cells are empty (not every expert scored "
        "every team), and they need complete data.",
        "ICC를 정의할 수 없습니다. 전문가 × 팀 {cells}칸 중 {missing}칸이 비어 있으며(모든 전문가가 모든 팀을 "
        "평가하지는 않음), ICC는 빈칸 없는 자료가 필요합니다.",
    ),
    "xp_icc_small": (
        "The ICCs are not defined: they need at least 2 experts and 2 teams.",
        "ICC를 정의할 수 없습니다. 전문가 2명과 팀 2개 이상이 필요합니다.",
    ),
    "xp_icc_undefined": ("The ICCs are not defined for these scores.", "이 점수로는 ICC를 정의할 수 없습니다."),
    "xp_criteria_alpha": ("α per rubric criterion (levels)", "루브릭 기준별 α (등급)"),
    # Severity
    "xp_severity": ("Severity of each expert", "전문가별 엄격도"),
    "xp_severity_intro": (
        "Severity: an expert's mean difference from the other experts on the teams they scored, in points on "
        "0–100; below 0 is harsher, above 0 more lenient. ⚑ marks an outlier (robust z beyond ±2).",
        "엄격도: 같은 팀을 평가한 다른 전문가들과의 평균 차이(0–100 점수 기준)입니다. 0보다 작으면 더 엄격하고, "
        "크면 더 관대합니다. ⚑는 이상치(로버스트 z가 ±2를 넘음)를 뜻합니다.",
    ),
    "xp_expert": ("Expert", "전문가"),
    "xp_severity_col": ("Severity", "엄격도"),
    "xp_teams_scored": ("Teams scored", "평가한 팀"),
    "xp_deviation": ("Mean |deviation|", "평균 |편차|"),
    "xp_alpha_without": ("α without this expert", "이 전문가 제외 시 α"),
    "xp_outlier": ("outlier", "이상치"),
    "xp_no_outliers": ("No expert is flagged as an outlier.", "이상치로 표시된 전문가가 없습니다."),
    "xp_outliers": ("Flagged as outliers: {ids}.", "이상치로 표시된 전문가: {ids}."),
    # Identification
    "xp_identification": ("Could the experts identify the team?", "전문가가 팀을 알아볼 수 있었는가?"),
    "xp_identified": (
        "Experts said they recognised the team in {k} of {n} reviews ({pct}); unsure in {u}.",
        "전문가들은 평가 {n}건 중 {k}건에서 팀을 알아보았다고 답했습니다({pct}). 확실하지 않다는 답은 {u}건입니다.",
    ),
    "xp_identified_none": (
        "The review forms did not ask (blinding was off), so how often experts recognised the team is not known.",
        "평가서에 팀 식별 여부를 묻지 않았으므로(블라인드 평가 미적용) 전문가가 팀을 알아본 빈도는 알 수 없습니다.",
    ),
    "xp_identification_note": (
        "Every round-1 review under blinding asked \"could you identify the team?\" (yes, no or unsure).",
        "블라인드 평가에서는 모든 1라운드 평가서가 \"팀을 알아볼 수 있었습니까?\"(예, 아니요, 잘 모르겠음)를 "
        "물었습니다.",
    ),
    # Aggregates
    "xp_aggregates": ("Aggregates per team", "팀별 종합 점수"),
    "xp_rule": (
        "Rule: the {rule} of the experts' totals (0–100); the {counts} aggregate counts as the team's expert score. "
        "Both are shown.",
        "규칙: 전문가 총점(0–100)의 {rule}. 팀의 전문가 점수로 반영되는 것은 {counts} 종합 점수이며, 두 값을 모두 "
        "표시합니다.",
    ),
    "xp_rule_mean": ("mean", "평균"),
    "xp_rule_trimmed_mean": ("trimmed mean", "절사 평균"),
    "xp_rule_median": ("median", "중앙값"),
    "xp_counts_raw": ("raw", "원점수"),
    "xp_counts_severity_adjusted": ("severity-adjusted", "엄격도 보정"),
    "xp_col_experts": ("Experts", "전문가 수"),
    "xp_col_raw": ("Raw aggregate", "원점수 종합"),
    "xp_col_adjusted": ("Severity-adjusted", "엄격도 보정 종합"),
    "xp_col_counted": ("Counts (± standard error)", "반영 점수 (± 표준오차)"),
    "xp_col_identified": ("Recognised", "팀 식별"),
    "xp_col_revised": ("Revised in round 2", "2라운드 수정"),
    "xp_col_shift": ("Mean round-2 shift", "2라운드 평균 변화"),
    "xp_col_documents": ("Documents (SHA-256)", "문서 (SHA-256)"),
    "xp_counted_mark": ("counts", "반영"),
    # Round 2
    "xp_round2": ("Round 2: revisions after the discussion", "2라운드: 토론 후 수정"),
    "xp_round2_intro": (
        "Round-1 reviews were locked on submission; revisions in round 2 are stored beside them. Shift = final "
        "total − round-1 total, in points on 0–100.",
        "1라운드 평가서는 제출과 함께 잠기며, 2라운드 수정은 그 옆에 따로 저장됩니다. 변화 = 최종 총점 − 1라운드 "
        "총점(0–100 기준).",
    ),
    "xp_round2_summary": (
        "{k} of {n} reviews were revised in round 2; mean shift {shift} points.",
        "평가 {n}건 중 {k}건이 2라운드에서 수정되었습니다. 평균 변화 {shift}점.",
    ),
    "xp_round2_none": (
        "No expert revised a score in round 2: the round-1 scores are final.",
        "2라운드에서 점수를 수정한 전문가가 없습니다. 1라운드 점수가 최종 점수입니다.",
    ),
    # Provenance
    "xp_provenance": ("Provenance", "근거 자료"),
    "xp_rubric_sha": ("Rubric SHA-256", "루브릭 SHA-256"),
    "xp_result_sha": ("Panel result document SHA-256", "평가단 결과 문서 SHA-256"),
    "xp_reviews_hashed": ("Distinct SHA-256 of the locked reviews, listed in the result document",
                          "결과 문서에 기록된 잠긴 평가서의 서로 다른 SHA-256 수"),
    # Plots
    "xp_plot_totals": ("Each expert's total per team, with the panel's aggregate",
                       "팀별 전문가 총점과 평가단 종합 점수"),
    "xp_plot_totals_caption": (
        "Dots: each expert's final total (0–100). Diamond: the aggregate that counts, with its 95% interval "
        "(± 1.96 standard errors). Open circle: the other aggregate (raw or severity-adjusted) where it differs.",
        "점: 전문가별 최종 총점(0–100). 마름모: 반영되는 종합 점수와 95% 구간(± 1.96 표준오차). 빈 원: 값이 다를 "
        "때 표시하는 다른 종합 점수(원점수 또는 엄격도 보정).",
    ),
    "xp_plot_severity": ("Severity of each expert", "전문가별 엄격도"),
    "xp_plot_severity_caption": (
        "Mean difference from the other experts, in points; below 0 harsher. Red bars are flagged outliers.",
        "다른 전문가들과의 평균 차이(점)이며 0보다 작으면 더 엄격합니다. 빨간 막대는 이상치입니다.",
    ),
    "xp_total_axis": ("Expert total (0–100)", "전문가 총점 (0–100)"),
    "xp_severity_axis": ("Severity (points; below 0 harsher)", "엄격도 (점, 0 미만은 더 엄격)"),
}
