"""The words of the report's "user arena" section, in English and Korean (merged into `labels.LABELS`).

Kept apart from `arena_section` so `labels` can take them in without importing the section's plotting code.
"""

from __future__ import annotations

ARENA_LABELS: dict[str, tuple[str, str]] = {
    "ua_title": ("User arena", "사용자 평가 아레나"),
    "ua_intro": (
        "{counted} counted votes from {raters} invited raters in blind battles (segment {segment}). Each rater "
        "saw two anonymous answers to their own prompt and voted before learning which entrants wrote them. "
        "Strengths are Bradley–Terry ratings on the Elo-like scale (400 points = odds of 10 to 1) with "
        "{rounds}-round bootstrap 95% intervals.",
        "초대된 평가자 {raters}명이 블라인드 대결에서 던진 유효 투표 {counted}건(구간 {segment})입니다. 평가자는 "
        "자신의 질문에 대한 익명의 두 답변을 보고, 어느 참가 모델의 답인지 알기 전에 투표했습니다. 강도는 "
        "Elo 유사 척도(400점 = 10 대 1의 승산)의 Bradley–Terry 점수이며, 구간은 {rounds}회 부트스트랩 95% "
        "구간입니다.",
    ),
    "ua_counts": (
        "The {ranking} ranking counts; panel:user is each entrant's {score}, normalised as the criterion declares.",
        "{ranking} 순위가 반영되며, panel:user는 각 참가 모델의 {score}을(를) 평가 기준이 정한 방식으로 "
        "정규화한 값입니다.",
    ),
    "ua_ranking_raw": ("raw", "보정 전"),
    "ua_ranking_style_controlled": ("style-controlled", "스타일 보정"),
    "ua_score_expected_win_rate": ("expected win rate against the field (0–100)",
                                   "전체 참가 모델 대비 기대 승률(0–100)"),
    "ua_score_rating": ("rating", "점수"),
    "ua_ranking": ("Ranking with intervals", "순위와 신뢰구간"),
    "ua_col_rank": ("Rank", "순위"),
    "ua_col_raw": ("Raw rating [95% interval]", "보정 전 점수 [95% 구간]"),
    "ua_col_style": ("Style-controlled rating [95% interval]", "스타일 보정 점수 [95% 구간]"),
    "ua_col_rank_interval": ("Rank interval", "순위 구간"),
    "ua_col_user": ("panel:user ± SE", "panel:user ± 표준오차"),
    "ua_col_votes": ("Votes", "투표 수"),
    "ua_counted_mark": ("counts", "반영"),
    "ua_style_note": (
        "Style control fits the answers' length, headers, lists and bold text beside the strengths, so an entrant "
        "is not ranked up for formatting raters like. Style coefficients (log-odds per standard deviation): {coef}.",
        "스타일 보정은 답변의 길이·제목·목록·굵은 글씨를 강도와 함께 적합하여, 평가자가 선호하는 서식 때문에 "
        "순위가 올라가지 않게 합니다. 스타일 계수(표준편차당 로그 오즈): {coef}.",
    ),
    "ua_style_unidentified": (
        "Warning: the entrants' answers barely vary in style ({covariates}: R² ≥ 0.9 explained by which entrants met), "
        "so style cannot be told apart from strength and the style-controlled order rests on the penalty; read it "
        "beside the raw ranking.",
        "경고: 참가 모델 답변의 스타일이 거의 달라지지 않아({covariates}: 대결 조합이 R² 0.9 이상을 설명) "
        "스타일과 강도를 구분할 수 없으며, 스타일 보정 순위는 벌점항에 좌우됩니다. 보정 전 순위와 함께 보십시오.",
    ),
    "ua_plot_ratings": ("Arena ratings with 95% intervals, raw and style-controlled",
                        "아레나 점수와 95% 구간(보정 전, 스타일 보정)"),
    "ua_plot_ratings_caption": (
        "Each entrant's rating (dot) and 95% bootstrap interval (bar): raw on the left, style-controlled on the "
        "right. Overlapping intervals mean the order of those entrants is not settled by the votes.",
        "각 참가 모델의 점수(점)와 95% 부트스트랩 구간(막대): 왼쪽은 보정 전, 오른쪽은 스타일 보정. 구간이 "
        "겹치면 투표만으로는 그 모델들의 순서가 확정되지 않았다는 뜻입니다.",
    ),
    "ua_rating_axis": ("Rating (Elo-like scale)", "점수(Elo 유사 척도)"),
    "ua_pairs": ("Votes per pair", "대결 쌍별 투표 수"),
    "ua_pairs_intro": (
        "The server picks every battle's pair from a balanced schedule (quota {quota} votes per pair, left and "
        "right sides balanced). Quotas met: {met}; largest left/right difference in a pair: {lr}.",
        "모든 대결의 쌍은 서버가 균형 일정에 따라 정합니다(쌍별 할당 {quota}표, 좌우 균형). 할당 충족: {met}; "
        "쌍 내 좌우 배치 최대 차이: {lr}.",
    ),
    "ua_yes": ("yes", "예"),
    "ua_no": ("no", "아니요"),
    "ua_plot_pairs": ("Counted votes per pair of entrants", "참가 모델 쌍별 유효 투표 수"),
    "ua_plot_pairs_caption": (
        "Counted votes per pair; each cell also shows the row entrant's wins – the column entrant's wins.",
        "쌍별 유효 투표 수이며, 각 칸에 행 모델의 승 – 열 모델의 승도 표시합니다.",
    ),
    "ua_col_pair": ("Pair", "대결 쌍"),
    "ua_col_wins": ("Wins", "승"),
    "ua_col_ties": ("Ties", "무승부"),
    "ua_col_both_bad": ("Both bad", "둘 다 나쁨"),
    "ua_exclusions": ("Votes not counted, by reason", "반영되지 않은 투표(사유별)"),
    "ua_exclusions_intro": (
        "Nothing is deleted: a voided or excluded vote stays in the record with its reason. Votes: {total} cast, "
        "{counted} counted, {void} void, {excluded} excluded by the secretariat; attention checks {gold_pass} "
        "passed and {gold_fail} failed (they never count).",
        "어떤 투표도 삭제하지 않습니다. 무효 처리되거나 제외된 투표도 사유와 함께 기록에 남습니다. 투표 {total}건 "
        "중 유효 {counted}건, 무효 {void}건, 사무국 제외 {excluded}건; 주의력 확인 문항 통과 {gold_pass}건, "
        "실패 {gold_fail}건(순위에 반영되지 않음).",
    ),
    "ua_col_reason": ("Reason", "사유"),
    "ua_col_count": ("Votes", "투표 수"),
    "ua_no_exclusions": ("Every vote cast counts.", "모든 투표가 반영되었습니다."),
    "ua_flagged": (
        "Raters flagged by the anomalous-rater test (α = 0.05, corrected for the number of raters): {n}. The "
        "secretariat decided on each with the evidence; its decisions are listed above.",
        "이상 평가자 검정(α = 0.05, 평가자 수 보정)에서 표시된 평가자: {n}명. 사무국이 근거를 보고 각각 "
        "결정했으며, 그 결정은 위에 있습니다.",
    ),
    "ua_robustness": ("How many votes would change the result", "결과를 바꾸는 데 필요한 투표 수"),
    "ua_robustness_intro": (
        "Two analyses public arenas do not publish: the fewest counted votes whose removal changes who is in the "
        "top {cut} (and who is first), and the fewest injected adversarial votes that change the top {cut}; each "
        "found by search and verified by refitting.",
        "공개 아레나들이 발표하지 않는 두 가지 분석입니다. 상위 {cut}위 구성(및 1위)을 바꾸는 데 필요한 최소 "
        "제거 투표 수와, 상위 {cut}위 구성을 바꾸는 데 필요한 최소 주입 조작 투표 수이며, 각각 탐색으로 찾고 "
        "재적합으로 검증했습니다.",
    ),
    "ua_drop_cut": ("Votes to drop to change the top {cut}", "상위 {cut}위를 바꾸는 제거 투표 수"),
    "ua_drop_top": ("Votes to drop to change the top rank", "1위를 바꾸는 제거 투표 수"),
    "ua_rigging": ("Adversarial votes to inject to change the top {cut}", "상위 {cut}위를 바꾸는 주입 투표 수"),
    "ua_not_found": ("none found within {limit}", "{limit} 안에서 찾지 못함"),
    "ua_of_votes": ("{pct} of the votes", "전체 투표의 {pct}"),
    "ua_votes_n": ("{n} votes", "{n}표"),
    "ua_fig": ("{n} of {total} votes ({pct})", "{total}표 중 {n}표({pct})"),
    "ua_verified": ("verified by refitting", "재적합으로 검증"),
    "ua_unverified": ("not verified", "검증되지 않음"),
    "ua_change": ("{before} → {after}", "{before} → {after}"),
    "ua_warning": (
        "Fewer than 1% of the votes suffice to change the result: the arena's order near the cut is fragile; read "
        "it with its intervals.",
        "전체 투표의 1% 미만으로 결과가 바뀔 수 있습니다. 경계 부근의 아레나 순위는 불안정하므로 구간과 함께 "
        "읽으십시오.",
    ),
    "ua_robustness_missing": ("Not computed: {why}", "계산되지 않음: {why}"),
    "ua_segments": ("Segments", "구간"),
    "ua_segments_intro": (
        "Before voting opened, each entrant's identity (endpoint, model, weights digest), the system prompt and the "
        "decoding settings were frozen into the audit chain; a change opens a new, separately reported segment. "
        "The ranking uses the current segment.",
        "투표 시작 전에 각 참가 모델의 식별 정보(엔드포인트, 모델, 가중치 해시), 시스템 프롬프트와 디코딩 "
        "설정을 감사 체인에 고정했습니다. 변경 시 별도로 보고되는 새 구간이 열립니다. 순위는 현재 구간의 "
        "투표로 계산합니다.",
    ),
    "ua_col_segment": ("Segment", "구간"),
    "ua_col_opened": ("Frozen at", "고정 일시"),
    "ua_col_manifest": ("Manifest SHA-256", "고정 명세 SHA-256"),
    "ua_ratings": ("Ratings of the answers", "답변 평가"),
    "ua_ratings_intro": (
        "After voting, raters could rate each answer 1–5 for usefulness and for cost efficiency (shown with the "
        "entrant's measured speed and declared price). Means, with the number of ratings; they do not enter "
        "panel:user.",
        "투표 후 평가자는 각 답변의 실용성과 비용 효율(참가 모델의 측정 속도와 신고 가격을 함께 표시)을 1–5로 "
        "평가할 수 있었습니다. 평균과 평가 수이며, panel:user에는 반영되지 않습니다.",
    ),
    "ua_col_usefulness": ("Usefulness", "실용성"),
    "ua_col_cost": ("Cost efficiency", "비용 효율"),
    "ua_provenance": ("Provenance", "출처"),
    "ua_result_sha": ("Arena result SHA-256", "아레나 결과 SHA-256"),
    "ua_problem": ("The arena has no ranking: {why}", "아레나 순위가 없습니다: {why}"),
}
