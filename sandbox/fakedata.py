"""Deterministic, realistic viewer data shared by the provider emulations.

Every generator takes a ``random.Random`` so that the same seed gives the same viewers.
"""

from __future__ import annotations

import random

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彩春菊兰凤洁梅琳素云莲真环雪荣爱妹霞香月莺媛艳瑞凡佳嘉琼勤珍贞莉桂娣叶璧璐娅琦晶妍茜秋珊莎锦黛青倩婷姣婉娴瑾颖露瑶怡婵雁蓓纨仪荷丹蓉眉君琴蕊薇菁梦岚苑婕馨瑗琰韵融园艺咏卿聪澜纯毓悦昭冰爽琬茗羽希宁欣飘育滢馥筠柔竹霭凝晓欢霄枫芸菲寒伊亚宜可姬舒影荔枝思丽"
NICK_WORDS = [
    "小鱼",
    "阿飞",
    "晨曦",
    "星河",
    "木子",
    "花开",
    "清风",
    "明月",
    "老王",
    "大白",
    "糖果",
    "橙子",
    "追光者",
    "路人甲",
    "夏天",
    "云朵",
]
PLACES = [
    ("浙江", "杭州"),
    ("浙江", "宁波"),
    ("江苏", "南京"),
    ("江苏", "苏州"),
    ("广东", "广州"),
    ("广东", "深圳"),
    ("北京", "北京"),
    ("上海", "上海"),
    ("四川", "成都"),
    ("湖北", "武汉"),
    ("河南", "郑州"),
    ("山东", "济南"),
    ("福建", "厦门"),
    ("陕西", "西安"),
    ("湖南", "长沙"),
]
DEVICES = ["Windows", "Mac OS", "iOS", "Android", "iPadOS"]
BROWSERS = ["微信浏览器", "谷歌浏览器", "QQ浏览器", "Safari", "UC浏览器", "Edge"]
ORIGINS = ["直接访问", "微信分享", "朋友圈", "二维码", "官网嵌入"]
USER_AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_4) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/80.0.3987.149 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.44",
    "Mozilla/5.0 (Linux; Android 13; V2209A) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/108.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
]


def person_name(rng: random.Random) -> str:
    """A Chinese personal name such as 李秀英."""
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def nickname(rng: random.Random) -> str:
    """A viewer nickname: a name, a playful word, or a province-netizen label."""
    roll = rng.random()
    if roll < 0.4:
        return person_name(rng)
    if roll < 0.75:
        return rng.choice(NICK_WORDS) + str(rng.randint(1, 999))
    return rng.choice(PLACES)[0] + "省网友"


def place(rng: random.Random) -> tuple[str, str]:
    """(province, city)."""
    return rng.choice(PLACES)


def phone(rng: random.Random) -> str:
    return "1" + rng.choice("3578") + "".join(str(rng.randint(0, 9)) for _ in range(9))


def ipv4(rng: random.Random) -> str:
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))
