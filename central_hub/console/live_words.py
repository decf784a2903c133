"""The live view's console words, Chinese and English (merged into
:data:`central_hub.console.i18n.MESSAGES`)."""

from __future__ import annotations

__all__ = ["LIVE_EN", "LIVE_ZH"]

LIVE_ZH: dict[str, str] = {
    "live.title": "实时画面",
    "live.watch": "观看 {camera}",
    "live.stop": "停止观看",
    "live.overlay": "叠加区域和检测框",
    "live.none": "此设备未报告摄像头。",
    "live.unavailable": "实时画面需要中心连接消息代理。",
    "live.history": "观看记录",
    "live.who": "观看人",
    "live.camera": "摄像头",
    "live.from": "开始",
    "live.until": "结束",
    "live.frames": "帧数",
    "live.watching": "观看中",
    "live.case_link": "观看实时画面",
    "live.viewers": "观看人数",
}

LIVE_EN: dict[str, str] = {
    "live.title": "Live view",
    "live.watch": "Watch {camera}",
    "live.stop": "Stop watching",
    "live.overlay": "Overlay zones and detections",
    "live.none": "This device has reported no camera.",
    "live.unavailable": "Live view needs the hub's broker connection.",
    "live.history": "Who watched",
    "live.who": "Viewer",
    "live.camera": "Camera",
    "live.from": "From",
    "live.until": "Until",
    "live.frames": "Frames",
    "live.watching": "watching",
    "live.case_link": "Watch live",
    "live.viewers": "viewers",
}
