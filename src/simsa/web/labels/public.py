"""Public pages: programmes, stages, decisions, gate results, the audit log and its verification.

The stage page's report words (leaderboard, gates, robustness, appeals, …) are the report's own labels
(simsa.report.labels); these are the words the web pages add around them.
"""

from __future__ import annotations

LABELS: dict[str, tuple[str, str]] = {
    # start page
    "pub_programs_title": ("Programmes", "사업 목록"),
    "pub_programs_intro": ("Every programme judged here, with its stages and teams. Every page is public, and every "
                           "number on it can be checked against the audit log.",
                           "이 시스템에서 심사하는 모든 사업과 단계, 참여 팀입니다. 모든 페이지는 공개되며, 모든 "
                           "숫자는 감사 기록으로 확인할 수 있습니다."),
    "pub_no_programs": ("No programme is loaded yet.", "아직 등록된 사업이 없습니다."),
    "pub_how_to_load": ("The secretariat loads a programme file with: simsa program load FILE.toml",
                        "사무국은 다음 명령으로 사업 정의 파일을 등록합니다: simsa program load FILE.toml"),
    "pub_col_id": ("Id", "ID"),
    "pub_col_name": ("Name", "이름"),
    "pub_col_stages": ("Stages", "단계"),
    "pub_col_teams": ("Teams", "팀"),
    "pub_stages_decided": ("{decided} of {stages} decided", "{stages}개 단계 중 {decided}개 결정"),
    # programme overview
    "pub_timezone": ("Time zone", "시간대"),
    "pub_organiser": ("Organiser", "주관 기관"),
    "pub_description": ("Description", "설명"),
    "pub_teams": ("Teams", "참여 팀"),
    "pub_members": ("Consortium", "컨소시엄"),
    "pub_models": ("Models", "모델"),
    "pub_licence": ("Licence", "라이선스"),
    "pub_joins_at": ("Joins at", "합류 단계"),
    "pub_stages": ("Stages", "단계"),
    "pub_dates": ("Dates", "기간"),
    "pub_state": ("State", "상태"),
    "pub_decided": ("decided", "결정됨"),
    "pub_not_decided": ("not decided", "미결정"),
    "pub_decision_ref": ("decision #{id}, {when}", "결정 #{id}, {when}"),
    "pub_advanced_count": ("{n} advanced, {m} eliminated", "{n}팀 진출, {m}팀 탈락"),
    "pub_appeals_pending": ("{n} appeal(s) pending", "처리 중인 이의신청 {n}건"),
    "pub_decisions_count": ("{n} decision(s) in all", "결정 총 {n}건"),
    "pub_imported": ("imported from a published decision", "공표된 결정에서 가져옴"),
    "pub_versions": ("Programme versions loaded", "등록된 사업 정의 파일 버전"),
    "pub_ecosystem": ("Ecosystem signals", "생태계 지표"),
    "pub_ecosystem_intro": (
        "What the teams' models show on the model hub, read at dated snapshots and replayable from the raw answers "
        "stored with them. These are heuristic signals: downloads count file requests (CI traffic included), the "
        "trending score is the hub's own opaque score, and base-model declarations are self-reported.",
        "팀 모델이 모델 허브에서 보이는 지표를 날짜별 스냅숏으로 읽은 것이며, 함께 저장된 원본 응답으로 다시 계산할 수 "
        "있습니다. 휴리스틱 지표입니다: 다운로드는 파일 요청 수(CI 트래픽 포함), 트렌딩 점수는 허브의 비공개 점수, "
        "기반 모델 선언은 자기 신고입니다.",
    ),
    "pub_ecosystem_json": ("Series and tree as JSON", "시계열과 파생 트리 (JSON)"),
    "pub_ecosystem_taken": ("{n} snapshot(s)", "스냅숏 {n}개"),
    "pub_ecosystem_link": ("Ecosystem signals (model hub)", "생태계 지표 (모델 허브)"),
    "pub_versions_intro": ("Each version of the programme file as it was loaded, with its SHA-256: download the "
                           "text and hash it to check that the rules shown are the rules applied.",
                           "등록된 사업 정의 파일의 각 버전과 SHA-256입니다. 원문을 내려받아 해시를 계산하면 "
                           "표시된 규칙이 실제 적용된 규칙인지 확인할 수 있습니다."),
    "pub_version": ("Version", "버전"),
    "pub_loaded_at": ("Loaded at", "등록 일시"),
    "pub_loaded_by": ("Loaded by", "등록자"),
    "pub_file": ("File", "파일"),
    "pub_used_by": ("Decisions made with it", "이 버전으로 내린 결정"),
    "pub_in_force_mark": ("in force", "유효"),
    "pub_download_text": ("text (.toml)", "원문 (.toml)"),
    "pub_latest_sha": ("Latest version SHA-256", "최신 버전 SHA-256"),
    # stage page
    "pub_stage_title": ("{stage} — {program}", "{stage} — {program}"),
    "pub_superseded_notice": ("This decision is no longer in force: decision #{id} superseded it.",
                              "이 결정은 더 이상 유효하지 않습니다. 결정 #{id}(으)로 대체되었습니다."),
    "pub_see_in_force": ("See the decision in force", "현재 유효한 결정 보기"),
    "pub_past_decision": ("Decision #{id} (superseded)", "결정 #{id} (대체됨)"),
    "pub_decision_in_force": ("Decision in force", "현재 유효한 결정"),
    "pub_decided_by": ("Decided by", "결정자"),
    "pub_replace_reason": ("Why it replaced the previous decision", "이전 결정을 대체한 사유"),
    "pub_gate_record_link": ("full record", "전체 기록"),
    "pub_link_not_web": ("not a web link; shown as text only", "웹 링크가 아니어서 글자로만 표시합니다"),
    "pub_open_decision": ("Open decision #{id}", "결정 #{id} 보기"),
    # stage status (not decided)
    "pub_status_title": ("Not decided yet: what is recorded and what is missing",
                         "아직 결정되지 않음: 기록된 것과 빠진 것"),
    "pub_decidable": ("Everything needed is recorded: the stage can be decided.",
                      "필요한 기록이 모두 있어 이 단계를 결정할 수 있습니다."),
    "pub_not_decidable": ("The stage cannot be decided yet.", "아직 이 단계를 결정할 수 없습니다."),
    "pub_blockers": ("What blocks a decision", "결정을 막는 사항"),
    "pub_zero_counted": ("Missing scores that will count as zero", "0점으로 처리될 누락 점수"),
    "pub_candidates_note": ("The previous stage is not decided: these teams are candidates.",
                            "이전 단계가 결정되지 않아 아래 팀은 후보입니다."),
    "pub_basis": ("Why in this stage", "참여 근거"),
    "pub_missing_blocks": ("missing (blocks)", "누락 (결정 불가)"),
    "pub_panel_cell": ("expert panel: {step}", "전문가 패널: {step}"),
    "pub_arena_cell": ("user arena: {step}", "사용자 아레나: {step}"),
    "pub_missing_zero": ("missing (counts as 0)", "누락 (0점 처리)"),
    "pub_gate_missing": ("missing", "기록 없음"),
    "pub_scores_recorded": ("Scores and gate results recorded", "기록된 점수와 요건 심사 결과"),
    "pub_no_participants": ("No team takes part in this stage yet.", "아직 이 단계에 참여하는 팀이 없습니다."),
    # downloads
    "pub_downloads": ("Downloads", "내려받기"),
    "pub_dl_report_html": ("Report (HTML)", "보고서 (HTML)"),
    "pub_dl_report_md": ("Report (Markdown)", "보고서 (Markdown)"),
    "pub_dl_report_json": ("Report (JSON)", "보고서 (JSON)"),
    "pub_dl_decision": ("Decision (JSON, as recorded)", "결정 (JSON, 기록 원본)"),
    "pub_dl_scores": ("Every score row (CSV)", "전체 점수 기록 (CSV)"),
    "pub_dl_audit": ("Audit log (JSON)", "감사 기록 (JSON)"),
    "pub_dl_lineage": ("Lineage result (JSON)", "계보 분석 결과 (JSON)"),
    "pub_dl_lang_note": ("Reports are in English and Korean; add ?lang=en or ?lang=ko to the address for one "
                         "language.",
                         "보고서는 영어와 한국어로 작성됩니다. 한 언어만 원하면 주소에 ?lang=ko 또는 ?lang=en을 "
                         "붙이십시오."),
    # gate page
    "pub_gate_kind": ("Kind", "유형"),
    "pub_gate_kind_recorded": ("recorded with evidence", "증빙과 함께 기록"),
    "pub_gate_kind_min_score": ("computed from a score", "점수로 판정"),
    "pub_gate_kind_licence": ("computed from the programme file", "사업 정의 파일로 판정"),
    "pub_current_result": ("Current result", "현재 결과"),
    "pub_no_result": ("No result is recorded.", "기록된 결과가 없습니다."),
    "pub_recorded_by": ("Recorded by", "기록자"),
    "pub_recorded_at": ("Recorded at", "기록 일시"),
    "pub_record_no": ("Record", "기록 번호"),
    "pub_supersedes_record": ("replaces #{id}", "#{id} 대체"),
    "pub_void": ("void", "무효 처리"),
    "pub_void_reason": ("Reason", "사유"),
    "pub_batch": ("Batch", "일괄 기록"),
    "pub_records": ("Every record, newest first", "모든 기록 (최신순)"),
    "pub_in_decision": ("In the decision in force (#{id})", "현재 유효한 결정(#{id})에서"),
    "pub_not_in_decision": ("No decision in force uses this result yet.",
                            "아직 이 결과를 사용한 유효한 결정이 없습니다."),
    "pub_current": ("current", "현재"),
    "pub_superseded": ("superseded", "대체됨"),
    "pub_lineage_title": ("Lineage report", "가중치 계보 분석 보고서"),
    "pub_lineage_intro": ("The weight-lineage comparison behind this result, as simsa lineage compare wrote it "
                          "(in English).",
                          "이 결과의 근거가 된 가중치 계보 비교입니다. simsa lineage compare가 작성한 그대로(영어) "
                          "보여 줍니다."),
    "pub_lineage_unreadable": ("The attached lineage result cannot be shown as a report; download the JSON.",
                               "첨부된 계보 분석 결과를 보고서로 표시할 수 없습니다. JSON을 내려받으십시오."),
    "pub_yes": ("yes", "예"),
    "pub_no": ("no", "아니요"),
    # audit log
    "pub_audit_title": ("Audit log", "감사 기록"),
    "pub_audit_intro": ("Every write to the store, newest first. Each entry's hash covers the entry before it, so "
                        "an edit anywhere breaks the chain; anyone can re-check it.",
                        "저장소에 대한 모든 기록을 최신순으로 보여 줍니다. 각 기록의 해시는 직전 기록을 포함하므로 "
                        "어디를 고쳐도 체인이 끊기며, 누구나 다시 검증할 수 있습니다."),
    "pub_verify_link": ("Verify the log now", "지금 감사 기록 검증하기"),
    "pub_filter_action": ("Action starts with", "작업 이름 시작"),
    "pub_filter_actor": ("Actor", "수행자"),
    "pub_filter": ("Filter", "거르기"),
    "pub_clear": ("Clear", "초기화"),
    "pub_col_seq": ("No.", "번호"),
    "pub_col_time": ("Time", "시각"),
    "pub_col_actor": ("Actor", "수행자"),
    "pub_col_action": ("Action", "작업"),
    "pub_col_summary": ("What was written", "기록 내용"),
    "pub_col_hash": ("Hash", "해시"),
    "pub_audit_counts": ("{matched} of {total} entries; page {page} of {pages}",
                         "전체 {total}건 중 {matched}건, {pages}쪽 중 {page}쪽"),
    "pub_newer": ("← Newer", "← 최근"),
    "pub_older": ("Older →", "이전 →"),
    "pub_audit_empty": ("No entry matches.", "해당하는 기록이 없습니다."),
    "pub_audit_times": ("Times are in UTC, with Korean time (Asia/Seoul) below.",
                        "시각은 UTC이며, 아래에 한국 시간(Asia/Seoul)을 함께 표시합니다."),
    "pub_entry_title": ("Audit entry #{seq}", "감사 기록 #{seq}"),
    "pub_entity": ("Entity", "대상"),
    "pub_prev_hash": ("Previous hash", "이전 해시"),
    "pub_payload": ("Payload (as recorded)", "기록된 내용"),
    "pub_payload_not_json": ("The stored payload is not JSON; it is shown as stored.",
                             "저장된 내용이 JSON이 아니어서 저장된 그대로 보여 줍니다."),
    "pub_prev_entry": ("← Entry #{seq}", "← 기록 #{seq}"),
    "pub_next_entry": ("Entry #{seq} →", "기록 #{seq} →"),
    "pub_back_to_log": ("Back to the log", "감사 기록으로"),
    # verification
    "pub_verify_title": ("Verify the audit log", "감사 기록 검증"),
    "pub_verify_what": ("Checked just now: every entry's hash and its link to the entry before; every row of the "
                        "database against the state the log recorded (nothing edited, deleted or added outside "
                        "the log); and the database's schema version.",
                        "방금 검증한 내용: 모든 기록의 해시와 직전 기록과의 연결, 데이터베이스의 모든 행이 감사 "
                        "기록에 남은 상태와 같은지(기록 밖에서 고치거나 지우거나 추가한 것이 없는지), 데이터베이스 "
                        "스키마 버전."),
    "pub_verify_ok": ("OK — the log is intact and the database matches it.",
                      "정상 — 감사 기록이 온전하며 데이터베이스와 일치합니다."),
    "pub_verify_failed": ("FAILED — the log or the database was altered.",
                          "실패 — 감사 기록 또는 데이터베이스가 변경되었습니다."),
    "pub_verify_entries": ("Entries", "기록 수"),
    "pub_verify_head": ("Head hash", "최종 해시"),
    "pub_verify_head_note": ("Keep or publish this hash; simsa audit verify --expect-head HASH later also "
                             "catches a log cut short.",
                             "이 해시를 보관하거나 공개하십시오. 나중에 simsa audit verify --expect-head HASH로 "
                             "기록이 잘려 나간 경우도 찾아낼 수 있습니다."),
    "pub_verify_problems": ("Problems found", "발견된 문제"),
    "pub_col_kind": ("Kind", "종류"),
    "pub_col_table": ("Table", "테이블"),
    "pub_col_row": ("Row", "행"),
    "pub_col_entry": ("Entry", "기록"),
    "pub_col_message": ("Message", "내용"),
    "pub_verify_elsewhere": ("To verify elsewhere, download the log and run: simsa audit verify --file audit.json",
                             "다른 곳에서 검증하려면 감사 기록을 내려받아 다음을 실행하십시오: "
                             "simsa audit verify --file audit.json"),
    "pub_doc_sha256": ("SHA-256 of the stored comparison (re-hash the download to check it)",
                       "저장된 비교 결과의 SHA-256 (내려받은 파일의 해시와 비교해 확인할 수 있습니다)"),
    "pub_doc_size": ("{size} bytes", "{size}바이트"),
}
