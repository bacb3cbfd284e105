"""Fixed replies the channel gives on its own, without asking the assistant (zh first, en too)."""

UNSUPPORTED_MESSAGE = (
    "我暂时只能看懂文字消息哦，请直接打字告诉我你想做什么～\n"
    "I can only read text for now. Please type what you need."
)

UNKNOWN_MENU_ITEM = (
    "这个菜单暂时用不了，直接发文字告诉我你想做什么吧～\n"
    "This menu item isn't available yet. Please type what you need."
)

SOMETHING_WENT_WRONG = (
    "抱歉，系统开小差了，请稍后再试。\nSorry, something went wrong on our side. Please try again in a moment."
)
