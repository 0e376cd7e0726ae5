"""How upset the customer is, 0 (calm) to 3 (furious), read every turn.

The score adds what the customer says (the intent; threats to escalate outside the
company and insults, worth two; being fed up, sarcastic or contemptuous; demanding
accountability, compensation or action now; either of those aimed at "你们"; "again /
every day / the third time / three days now"), how they say it (！！！, 啊啊啊, 😡) and
what the conversation shows (the bot failed twice in a row, the same question asked
again, the same complaint filed before). Two or more counts as upset: tickets get high
priority and replies lead with empathy. Merely naming 12398 or the press in a question
is no threat, and digits repeated in an account number are no shouting.

Measured against hand-labelled messages by bench/frustration.py (see bench/RESULTS.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.text import normalize

MAX = 3
UPSET = 2  # from here on the customer is treated as upset
FURIOUS = 3  # from here on the bot escalates to a person

_INTENTS = {"express_frustration": 1, "complain": 1}
_N = r"[两三四五六七八九十几半\d]"  # a count of two or more: 三天, 十个小时, 5次
_CLAUSE = r"[^，。,.;；]"  # any character inside the same clause

# going outside the company (regulators, hotlines, the press, social media, court) or an
# ultimatum. Naming a hotline or the press is no threat ("12398是什么电话",
# "网上投诉怎么弄"): it takes a verb of going there. 12345 inside an account number neither.
_TARGETS = r"(?<!\d)(?:12398|12345)(?!\d)|市长热线|媒体|记者|电视台|报社|能源局|监管|信访|法院|微博|抖音|朋友圈|热搜"
_THREATS = re.compile(
    rf"(?:打|拨|找|去|向|告|发|联系|投诉到|反映到|告到|捅到|曝光到){_CLAUSE}{{0,4}}(?:{_TARGETS})|"
    r"上(?:新闻|热搜|电视)|发(?:到)?网上|曝光|起诉|上访|律师|告你们|等着瞧|你们等着|给我等着|跟你们没完|"
    rf"再不{_CLAUSE}{{1,12}}(?:我就|我们就|我自己|就去|就找|就打|就告)|"
    rf"不{_CLAUSE}{{0,6}}(?:解决|赔|处理|来电|给电){_CLAUSE}{{0,3}}(?:我就|就去)|"
    rf"出了?(?:事|人命){_CLAUSE}{{0,6}}(?:负责|担)"
)
_COMPLAINT = re.compile(r"投诉|举报|意见很大|不满意")
_INSULTS = re.compile(
    r"垃圾(?![桶站堆箱])|废物|骗子|混蛋|王八|滚(?![筒动烫])|去死|去你的|他妈|妈的|TMD|tmd|尼玛|卧槽|傻[子逼]|老子|"
    r"吃干饭|破(?:公司|服务|系统|机器人|玩意|单位|地方)|什么玩意|狗屁|放屁|有病[吧啊]|是不是有病|你们?有病|"
    r"智障|脑残|抢钱|抢劫|逼死|黑心|倒闭"
)
# it keeps happening, it has taken too long, patience is gone
_AGAIN = re.compile(
    r"又(?:停|断|跳|没|黑|涨|高|多|贵|扣|坏|烧|是|要|不|出|错|来了|这样|这么|翻)|天天|每天都|每次都|老是|总是|一直|"
    r"三番五次|反复|屡次|多少[次遍回]|好几[次回趟遍]|几次了|第[二三四五六七八九十几\d]+[次回]|"
    rf"{_N}+[次回趟遍]了|[跑找问打说发停]了?{_N}+[次回趟遍]|{_N}+(?:天|个?小时|个?月|周|个?星期)(?:了|没|都|还)|"
    rf"等了{_N}|[停等排]了?一(?:整天|上午|下午|晚上|整晚|宿)|一(?:整天|上午|下午|晚上|整晚|宿)了|整(?:天|晚|宿)|"
    r"到现在|到今天|至今|还没|还不|怎么还|还是这样|到底|究竟|[早就]就(?:说|报|反映)过"
)
# fed up, contemptuous, sarcastic, nobody answers, rhetorical challenges
_FED_UP = re.compile(
    r"受不了|忍无可忍|受够|真是够了|有完没完|太过分|过分了|气死|气人|火大|烦死|太差|差劲|离谱|不像话|失望|无语|服了|"
    r"敷衍|糊弄|走(?:个)?形式|什么素质|没素质|什么态度|态度(?:太|很|极)?(?:差|恶劣|冷)|不耐烦|爱理不理|挂我电话|"
    r"没人(?:管|接|理|来|回|处理|问)|没个人|人影|人呢|踢皮球|推来推去|互相推|推诿|扯皮|不作为|不负责|没.{0,3}诚意|"
    r"呵呵|真行|真有你们的|效率真高|好家伙|"
    r"凭什么|你们?(?:这是)?什么意思|管不管|有没有人(?:在)?(?:管|上班|处理|理)|谁给你们|合理吗|心里没数|让不让人|让人怎么|"
    rf"就(?:是)?这么(?:服务|办事|对待|干)|就这(?:服务|态度|效率)|(?:说好的|你们说的){_CLAUSE}{{0,12}}呢|"
    r"欺负|坑人|坑钱|乱收费|乱[收扣]"
)
# demands: accountability, compensation, now, no more scripts
_DEMAND = re.compile(
    r"给(?:我|我们)?(?:一)?个?说法|谁来(?:赔|负责|担|承担|买单)|谁(?:赔|买单)|这个谁负责|你们?(?:得|要|必须|来)负责|赔不赔|"
    r"(?:你们|你)必须|必须给我|(?:马上|立刻|立即|赶紧)(?:给我|派|来|处理|解决|恢复|送电|来电)|"
    r"别跟我(?:说|讲|扯)|不想听|没时间(?:跟|和|陪)你|别再让我|少废话|直接(?:说|告诉我)|我就问|"
    r"给我(?:个)?解释|解释解释|叫你们领导|找你们领导|领导(?:电话|出来)"
)
# being fed up or demanding, aimed at the company ("你们…"), counts once more
_BLAME = re.compile(r"你们|你(?!好)")
# shouting: ！！, ？？？, ！？, angry faces (not digits: 3201000005 is an account); sustained
# shouting (！！！, 啊啊啊, or shouting twice) counts double
_SHOUT = re.compile(r"[!！]{2,}|[?？]{3,}|[!！][?？]|[?？][!！]|([啊呀哇嗷])\1{2,}|[😡🤬😤💢]")
_SCREAM = re.compile(r"[!！]{3,}|([啊呀哇嗷])\1{2,}")


@dataclass(frozen=True)
class Conversation:
    """What the conversation so far says about the customer's patience."""

    fallbacks_in_a_row: int = 0
    repeated_question: bool = False
    complained_before: bool = False


def score_message(text: str | None, intent: str | None = None) -> int:
    """The score of one message on its own: intent, words and shouting."""
    text = normalize(text)
    score = max(_INTENTS.get(intent or "", 0), 1 if _COMPLAINT.search(text) else 0)
    if _THREATS.search(text) or _INSULTS.search(text):
        score += 2
    fed_up, demand = bool(_FED_UP.search(text)), bool(_DEMAND.search(text))
    score += fed_up + demand
    score += (fed_up or demand) and bool(_BLAME.search(text))
    score += bool(_AGAIN.search(text))
    shouts = len(_SHOUT.findall(text))
    score += 2 if shouts >= 2 or _SCREAM.search(text) else shouts
    return min(score, MAX)


def score(text: str | None, intent: str | None, conversation: Conversation) -> int:
    """The turn's score: the message, raised by what the conversation shows."""
    total = score_message(text, intent)
    total += conversation.fallbacks_in_a_row >= 2
    total += conversation.repeated_question
    total += conversation.complained_before
    return min(total, MAX)
