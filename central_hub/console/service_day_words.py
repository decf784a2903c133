"""The service-day page's console words, Chinese and English (merged into
:data:`central_hub.console.i18n.MESSAGES`)."""

from __future__ import annotations

__all__ = ["SERVICE_DAYS_EN", "SERVICE_DAYS_ZH"]

SERVICE_DAYS_ZH: dict[str, str] = {
    "nav.service_days": "便民服务日",
    "device.exempted": "便民服务日暂停的规则",
    "sd.title": "便民服务日",
    "sd.explain": (
        "便民服务日里，修鞋、缝补、配钥匙等传统行业在指定地点服务，执法以劝导为主：所列地点的"
        "相应规则暂停。前端设备在窗口内不上报；中心收到落在窗口内的事件照常保存，但不立案，并记下原因。"
    ),
    "sd.calendar": "日历",
    "sd.none_configured": "未配置便民服务日（XH_HUB_SERVICE_DAYS_PATH）。",
    "sd.upcoming": "今后 {days} 天",
    "sd.when": "时间",
    "sd.name": "名称",
    "sd.suspends": "暂停的规则",
    "sd.where": "地点",
    "sd.active": "进行中",
    "sd.none_upcoming": "这段时间没有便民服务日。",
    "sd.units": "前端设备",
    "sd.exemptions": "豁免条数",
    "sd.state": "下发状态",
    "sd.up_to_date": "已下发",
    "sd.pending": "待下发（每小时及启动时下发）",
    "sd.no_units": "没有设备涉及便民服务日。",
    "sd.held": "未立案的事件（落在便民服务日内）",
    "sd.detected": "发现时间",
    "sd.place": "设备 / 摄像头 / 区域",
    "sd.code": "事件代码",
    "sd.reason": "原因",
    "sd.none_held": "没有因便民服务日未立案的事件。",
}

SERVICE_DAYS_EN: dict[str, str] = {
    "nav.service_days": "Service days",
    "device.exempted": "Rules silent for a service day",
    "sd.title": "Convenience service days",
    "sd.explain": (
        "On a service day traditional trades (shoe repair, mending, locksmiths) serve at a set "
        "place and enforcement joins with advice: the rules listed are suspended there. Units "
        "report nothing in a window; an event the hub receives inside one is stored but no case "
        "is filed, and the reason is kept."
    ),
    "sd.calendar": "Calendar",
    "sd.none_configured": "No service days are configured (XH_HUB_SERVICE_DAYS_PATH).",
    "sd.upcoming": "Next {days} days",
    "sd.when": "When",
    "sd.name": "Name",
    "sd.suspends": "Suspends",
    "sd.where": "Where",
    "sd.active": "now",
    "sd.none_upcoming": "No service days in this period.",
    "sd.units": "Units",
    "sd.exemptions": "Exemptions",
    "sd.state": "Pushed",
    "sd.up_to_date": "up to date",
    "sd.pending": "pending (pushed at start and every hour)",
    "sd.no_units": "No unit is concerned by a service day.",
    "sd.held": "Events not filed (in a service day)",
    "sd.detected": "Detected",
    "sd.place": "Unit / camera / zone",
    "sd.code": "Code",
    "sd.reason": "Reason",
    "sd.none_held": "No event was held back by a service day.",
}
