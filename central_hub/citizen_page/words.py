"""The report page's words in Chinese (the default) and English.

A key missing from English falls back to Chinese; a key missing everywhere shows as
itself. The unit tests check both tables carry the same keys.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["WORDS", "Lang", "Words", "pick_lang"]

Lang = Literal["zh", "en"]

_ZH: dict[str, str] = {
    "title": "随手拍 · 市民上报",
    "intro": "看到占道经营、乱堆物料、垃圾满溢、路面破损？拍下来告诉城管。",
    "lang.other": "English",
    "plate.at": "您扫描的是 {name} 的二维码牌，位置已填好。",
    "plate.refused.title": "无法识别这个二维码",
    "plate.refused.malformed": "这不是城管二维码牌的链接。",
    "plate.refused.forged": "这个二维码不是城管发布的（签名不符）。"
    "如在街上看到，请拨打 12319 告诉我们。",
    "plate.refused.unknown": "这块二维码牌已停用。",
    "plate.refused.next": "您仍可以在上报页用手机定位上报。",
    "form.photo": "照片",
    "form.photo_hint": "拍照或从相册选择（JPEG/PNG/WebP，不超过 {limit}）。"
    "照片中的位置信息会被删除，照片不会公开。",
    "form.code": "问题类别",
    "form.code_pick": "请选择",
    "form.description": "描述（选填）",
    "form.description_hint": "例如：店门外堆了纸箱，挡住盲道。",
    "form.where": "位置",
    "form.locate": "使用手机定位",
    "form.locating": "正在定位…",
    "form.located": "已定位：{lat}, {lon}（精度约 {acc} 米）",
    "form.locate_failed": "无法定位：{why}。请手动填写坐标。",
    "form.lat": "纬度",
    "form.lon": "经度",
    "form.pin_hint": "也可以直接填写纬度、经度。",
    "form.pin_map": "或在地图上点选位置（可放大后再点）：",
    "form.zoom_in": "放大",
    "form.zoom_out": "缩小",
    "form.contact": "联系方式（选填）",
    "form.contact_hint": "仅用于回访，不会公开；结案 {days} 天后删除。",
    "form.name": "称呼",
    "form.phone": "电话",
    "form.email": "邮箱",
    "form.submit": "提交上报",
    "form.errors": "请修改以下问题后再提交：",
    "form.closed": "随手拍上报已暂停，请拨打 12319 城管热线。",
    "nearby.title": "附近 {radius} 米内已有这些未结上报，是其中之一吗？",
    "nearby.same": "是这个问题",
    "nearby.same_done": "已选择同一类别；提交后将并入该上报一起处理。",
    "nearby.none": "附近没有未结的上报。",
    "nearby.away": "{metres} 米 · {ago}",
    "ago.minutes": "{n} 分钟前",
    "ago.hours": "{n} 小时前",
    "ago.days": "{n} 天前",
    "status.title": "上报进度",
    "status.number": "上报编号 {id}",
    "status.keep": "请收藏本页地址，随时查看处理进度。",
    "status.what": "问题",
    "status.where": "位置",
    "status.when": "上报时间",
    "status.now": "当前状态",
    "status.deadline": "处理时限",
    "status.agency": "承办",
    "status.history": "处理记录",
    "status.photo": "已收到照片",
    "status.new": "再报一个问题",
    "status.not_found": "没有找到这个上报。",
    "throttled": "提交过于频繁，请 {seconds} 秒后再试。",
    "csrf": "页面已过期，请刷新后重新提交。",
}

_EN: dict[str, str] = {
    "title": "Snap and report",
    "intro": "Stalls on the pavement, goods piled out, overflowing bins, a broken road? "
    "Take a photo and tell the city.",
    "lang.other": "中文",
    "plate.at": "You scanned the plate at {name}; its location is filled in.",
    "plate.refused.title": "This QR code is not recognised",
    "plate.refused.malformed": "This is not the link of a city QR plate.",
    "plate.refused.forged": "This QR code was not issued by the city (its signature is wrong). "
    "If you saw it on the street, please call 12319 and tell us.",
    "plate.refused.unknown": "This plate is no longer in use.",
    "plate.refused.next": "You can still report with your phone's location on the report page.",
    "form.photo": "Photo",
    "form.photo_hint": "Take one or choose one (JPEG/PNG/WebP, at most {limit}). Its location "
    "data is removed and the photo is never published.",
    "form.code": "What is the problem?",
    "form.code_pick": "Choose",
    "form.description": "Description (optional)",
    "form.description_hint": "For example: boxes piled outside a shop block the tactile path.",
    "form.where": "Location",
    "form.locate": "Use my location",
    "form.locating": "Finding your location…",
    "form.located": "Located: {lat}, {lon} (within about {acc} m)",
    "form.locate_failed": "No location: {why}. Type the coordinates instead.",
    "form.lat": "Latitude",
    "form.lon": "Longitude",
    "form.pin_hint": "Or type the latitude and longitude.",
    "form.pin_map": "Or tap the place on the map (zoom in first for a closer pin):",
    "form.zoom_in": "Zoom in",
    "form.zoom_out": "Zoom out",
    "form.contact": "Contact (optional)",
    "form.contact_hint": "Only for following up, never published; deleted {days} days after "
    "the case closes.",
    "form.name": "Name",
    "form.phone": "Phone",
    "form.email": "Email",
    "form.submit": "Send report",
    "form.errors": "Please fix these and send again:",
    "form.closed": "Reporting here is paused; please call the city hotline 12319.",
    "nearby.title": "Open reports within {radius} m: is it one of these?",
    "nearby.same": "It's this one",
    "nearby.same_done": "Same category chosen: your report joins that one once sent.",
    "nearby.none": "No open reports nearby.",
    "nearby.away": "{metres} m · {ago}",
    "ago.minutes": "{n} min ago",
    "ago.hours": "{n} h ago",
    "ago.days": "{n} days ago",
    "status.title": "Your report",
    "status.number": "Report number {id}",
    "status.keep": "Bookmark this page to follow your report.",
    "status.what": "Problem",
    "status.where": "Location",
    "status.when": "Reported",
    "status.now": "Status",
    "status.deadline": "Due by",
    "status.agency": "Handled by",
    "status.history": "History",
    "status.photo": "Photo received",
    "status.new": "Report another problem",
    "status.not_found": "No report has this number.",
    "throttled": "Too many reports; try again in {seconds} s.",
    "csrf": "This page has expired: reload it and send again.",
}

WORDS: dict[Lang, dict[str, str]] = {"zh": _ZH, "en": _EN}


class Words:
    """``t(key, **values)`` in one language."""

    def __init__(self, lang: Lang) -> None:
        self.lang = lang

    def __call__(self, key: str, **values: object) -> str:
        text = WORDS[self.lang].get(key) or _ZH.get(key) or key
        return text.format(**values) if values else text


def pick_lang(asked: str | None, accept_language: str | None) -> Lang:
    """``?lang=`` when it names a language; else English when the browser puts it before
    Chinese; else Chinese."""
    if asked in ("zh", "en"):
        return asked  # type: ignore[return-value]
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "zh"
