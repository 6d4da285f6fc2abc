# ruff: noqa: RUF001 - the Chinese words use Chinese punctuation
"""What the terminal client says, in English or Simplified Chinese (when the locale is zh_*)."""

from __future__ import annotations

import os

EN = {
    "prompt": "you> ",
    "answer": "ai>",
    "bye": "bye",
    "again": "press Ctrl-C again (or Ctrl-D) to leave",
    "stopped": "(stopped; the partial reply is kept)",
    "length": "(the reply was cut at its length limit: /continue goes on)",
    "filtered": "(the provider withheld part of this reply)",
    "new": "new conversation",
    "no_conversation": "no conversation yet: ask something first",
    "unknown": "unknown command {name}: /help lists them",
    "unlimited": "no limit",
    "left": "{n} requests left today",
    "opened": "opened {title} ({id})",
    "saved": "saved to {path}",
    "continue": "Continue from where you stopped.",
}

ZH = {
    **EN,
    "prompt": "问：",
    "answer": "答：",
    "bye": "再见",
    "again": "再按一次 Ctrl-C（或 Ctrl-D）退出",
    "stopped": "（已停止，已保留部分回答）",
    "length": "（回答因长度限制被截断：输入 /continue 继续）",
    "filtered": "（服务商隐去了部分回答内容）",
    "new": "新对话",
    "no_conversation": "还没有对话：请先提问",
    "unknown": "未知命令 {name}：输入 /help 查看",
    "unlimited": "无限制",
    "left": "今日还剩 {n} 次请求",
    "opened": "已打开 {title}（{id}）",
    "saved": "已保存到 {path}",
    "continue": "请接着刚才的内容继续。",
}


def words(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The words for the user's locale (LC_ALL, then LC_MESSAGES, then LANG)."""
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            return ZH if value.lower().startswith("zh") else EN
    return EN
