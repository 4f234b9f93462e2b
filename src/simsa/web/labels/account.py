"""One's own account: password and API tokens."""

from __future__ import annotations

LABELS: dict[str, tuple[str, str]] = {
    "acct_last_login": ("Last sign-in: {when}", "최근 로그인: {when}"),
    "acct_password": ("Change the password", "비밀번호 변경"),
    "acct_old_password": ("Current password", "현재 비밀번호"),
    "acct_new_password": ("New password", "새 비밀번호"),
    "acct_new_again": ("New password again", "새 비밀번호 확인"),
    "acct_change_button": ("Change", "변경"),
    "acct_tokens": ("API tokens", "API 토큰"),
    "acct_tokens_help": ("A token lets a program act as you through the API (Authorization: Bearer …). It is shown "
                         "once, when it is made; revoke one you no longer use.",
                         "토큰이 있으면 프로그램이 API로 이 계정 대신 작업할 수 있습니다"
                         "(Authorization: Bearer …). 토큰은 만들 때 한 번만 표시됩니다. "
                         "쓰지 않는 토큰은 폐기하십시오."),
    "acct_token_name": ("Name", "이름"),
    "acct_token_prefix": ("Begins with", "앞부분"),
    "acct_created": ("Created", "생성"),
    "acct_expires": ("Expires", "만료"),
    "acct_revoked": ("Revoked", "폐기"),
    "acct_last_used": ("Last used", "최근 사용"),
    "acct_never": ("never", "없음"),
    "acct_revoke": ("Revoke", "폐기"),
    "acct_no_tokens": ("No API tokens.", "API 토큰이 없습니다."),
    "acct_new_token": ("New token", "새 토큰"),
    "acct_expires_days": ("Expires after (days, optional)", "유효 기간 (일, 선택)"),
    "acct_create_button": ("Create", "만들기"),
    "acct_token_created": ("New API token", "새 API 토큰"),
    "acct_token_once": ("Copy the token now: it is shown only this once and cannot be shown again.",
                        "지금 토큰을 복사하십시오. 이번 한 번만 표시되며 다시 볼 수 없습니다."),
    "acct_token_usage": ("Send it as: Authorization: Bearer <token>", "사용법: Authorization: Bearer <토큰>"),
    "acct_back": ("Back to my account", "내 계정으로"),
    "done_password_changed": ("Your password is changed.", "비밀번호를 변경했습니다."),
    "done_token_revoked": ("The token is revoked.", "토큰을 폐기했습니다."),
}
