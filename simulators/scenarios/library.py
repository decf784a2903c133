"""The scripted scenarios, one builder per name.

Every builder takes a seed, frame size and fps and returns a :class:`Scenario`. Positions
are metres on the street of :mod:`simulators.scenes.street`; the timelines are in each
builder's docstring.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from datetime import datetime

from simulators.scenarios.actors import Actor, stay, walk
from simulators.scenarios.core import Scenario, Stage, TruthViolation, ground_zone
from simulators.scenes.camera import Camera
from simulators.scenes.plates import random_plate
from simulators.scenes.street import LIGHTINGS, StreetLayout

#: Where the fixed pole cameras stand: site name -> (lat, lon).
CAMERA_SITES: dict[str, tuple[float, float]] = {
    "market": (28.6472, 121.2615),
    "parking": (28.6455, 121.2650),
}

# ----------------------------------------------------------------------------- stages

MARKET = StreetLayout(road_w=9.0, pave_left=5.5, pave_right=4.0, door_depth=1.2, variant=11)
PARKING = StreetLayout(
    road_w=10.0,
    pave_left=4.0,
    pave_right=3.5,
    door_depth=0.0,
    no_parking=(-5.0, -2.8, 7.5, 13.5),
    variant=23,
)
TRUCK_ROAD = StreetLayout(road_w=10.0, pave_left=3.5, pave_right=3.5, door_depth=0.0, variant=5)

#: The stall's spot on the market pavement and the shop whose goods creep out.
STALL_X, STALL_Z = -6.6, 22.0
SHOP_Z = (14.0, 17.5)


def _market_camera(w: int, h: int, height_m: float = 6.5) -> Camera:
    return Camera.looking(
        w, h, hfov_deg=62, x=MARKET.kerb_right + 0.8, height_m=height_m, pitch_deg=17, yaw_deg=-14
    )


def _parking_camera(w: int, h: int) -> Camera:
    return Camera.looking(
        w, h, hfov_deg=60, x=PARKING.kerb_left - 0.6, height_m=5.5, pitch_deg=22, yaw_deg=7
    )


def _truck_camera(w: int, h: int) -> Camera:
    return Camera.looking(w, h, hfov_deg=75, x=1.8, height_m=2.6, pitch_deg=16, yaw_deg=0, z=-0.5)


def _market_zones(cam: Camera) -> dict[str, list[tuple[float, float]]]:
    lay = MARKET
    return {
        "pavement": ground_zone(cam, lay.door_line_left, lay.kerb_left - 0.2, 3.0, 70.0),
        "shop_front": ground_zone(cam, lay.door_line_left, lay.door_line_left + 2.6, 3.0, 70.0),
        "road": ground_zone(cam, lay.kerb_left, lay.kerb_right, 3.0, 120.0),
        "pavement_right": ground_zone(cam, lay.kerb_right + 0.2, lay.facade_right, 3.0, 70.0),
    }


def _parking_zones(cam: Camera) -> dict[str, list[tuple[float, float]]]:
    assert PARKING.no_parking is not None
    x0, x1, z0, z1 = PARKING.no_parking
    return {
        "no_parking": ground_zone(cam, x0, x1, z0 - 1.5, z1),
        "road": ground_zone(cam, PARKING.kerb_left, PARKING.kerb_right, 3.0, 120.0),
        "pavement": ground_zone(cam, PARKING.facade_left, PARKING.kerb_left - 0.2, 3.0, 70.0),
    }


# ----------------------------------------------------------------------------- extras


def _rng(name: str, seed: int) -> random.Random:
    return random.Random(zlib.crc32(name.encode()) * 1_000_003 + seed)


def _pedestrians(
    rng: random.Random, lay: StreetLayout, duration: float, every: float, crossing: bool = True
) -> list[Actor]:
    """People walking along both pavements (and a few crossing), one every ~``every`` s."""
    out = []
    t = rng.uniform(0, every)
    while t < duration:
        left = rng.random() < 0.5
        if left:
            x = rng.uniform(
                lay.door_line_left + 0.6 if lay.door_depth else lay.facade_left + 0.8,
                lay.kerb_left - 0.6,
            )
        else:
            x = rng.uniform(lay.kerb_right + 0.6, lay.facade_right - 0.6)
        far, near = 75.0, 4.0
        path = [(x, far), (x + rng.uniform(-0.3, 0.3), near)]
        if rng.random() < 0.5:
            path.reverse()
        out.append(
            walk("person", rng.randrange(1 << 30), path, t, rng.uniform(1.0, 1.6), walking=True)
        )
        if crossing and rng.random() < 0.12:
            z = rng.uniform(25, 45)
            cx = [(lay.kerb_right + 0.5, z), (lay.kerb_left - 0.5, z + rng.uniform(-2, 2))]
            if rng.random() < 0.5:
                cx.reverse()
            out.append(
                walk(
                    "person",
                    rng.randrange(1 << 30),
                    cx,
                    t + rng.uniform(0, every),
                    1.3,
                    walking=True,
                )
            )
        t += rng.uniform(0.4, 1.6) * every
    return out


def _traffic(
    rng: random.Random,
    lay: StreetLayout,
    duration: float,
    every: float,
    keep_clear: float | None = None,
) -> list[Actor]:
    """Cars (and the odd truck) driving through in both directions."""
    out = []
    t = rng.uniform(0, every)
    while t < duration:
        label = "car" if rng.random() < 0.85 else "truck"
        away = rng.random() < 0.5
        lane = lay.road_w / 4 if away else -lay.road_w / 4
        if keep_clear is not None and not away:
            lane = max(lane, keep_clear + 1.2)
        speed = rng.uniform(6, 11)
        near = 12.0 if label == "car" else 16.0
        path = [(lane, near), (lane, 160.0)]
        if not away:
            path.reverse()
        out.append(
            walk(
                label,
                rng.randrange(1 << 30),
                path,
                t,
                speed,
                heading=1 if away else -1,
                plate=random_plate(rng, "浙"),
            )
        )
        t += rng.uniform(0.5, 1.5) * every
    return out


def _scenario(
    name: str,
    *,
    seed: int,
    width: int,
    height: int,
    fps: float,
    start_time: datetime,
    duration: float,
    stage: Stage,
    actors: list[Actor],
    truth: list[TruthViolation],
    zones: dict[str, list[tuple[float, float]]],
    camera: str = "pole",
    site: str | None = None,
    description: str = "",
    route: tuple[tuple[float, float, float], ...] = (),
) -> Scenario:
    return Scenario(
        name=name,
        camera=camera,
        fps=fps,
        duration_s=duration,
        width=width,
        height=height,
        start_time=start_time,
        zones=zones,
        truth=tuple(truth),
        route=route,
        stage=stage,
        actors=tuple(actors),
        seed=seed,
        site=site,
        description=description,
    )


def _stall_actors(rng: random.Random, t_in: float, t_out: float) -> list[Actor]:
    """A vendor wheels a stall to its spot, stays, and wheels it away."""
    v = rng.randrange(1 << 30)
    vendor = rng.randrange(1 << 30)
    arrive = [
        (t_in - 6, STALL_X, STALL_Z + 8),
        (t_in, STALL_X, STALL_Z),
        (t_out, STALL_X, STALL_Z),
        (t_out + 6, STALL_X, STALL_Z + 8),
    ]
    stall = Actor("stall", v, tuple(arrive))
    person = Actor(
        "person", vendor, tuple((t, x + 1.1, z + 0.3) for t, x, z in arrive), walking=True
    )
    return [stall, person]


def _goods_creep(rng: random.Random, t0: float, lay: StreetLayout) -> tuple[list[Actor], float]:
    """Goods start inside the door line and are pushed out over ~40 s; returns the crossing
    time (when the first crate's foot passes the door line)."""
    inside = lay.facade_left + 0.45
    outside = lay.door_line_left + 1.3
    actors = []
    cross = 0.0
    for k, z in enumerate(SHOP_Z):
        start = t0 + 25.0 * k
        end = start + 40.0
        actors.append(
            Actor(
                "goods",
                rng.randrange(1 << 30),
                ((0.0, inside, z), (start, inside, z), (end, outside, z), (1e9, outside, z)),
            )
        )
        if k == 0:
            cross = start + (lay.door_line_left - inside) / (outside - inside) * (end - start)
    return actors, cross


def _clip(actors: list[Actor], duration: float) -> list[Actor]:
    return [a for a in actors if a.start <= duration]


# ----------------------------------------------------------------------------- scenarios


def market_vendor(seed: int, width: int, height: int, fps: float, start_time: datetime) -> Scenario:
    """Market street, pole camera, 8 minutes, daylight.

    - 00:00-08:00 people walk along both pavements, a few cross; cars drive through.
    - 00:24-00:30 a vendor wheels a stall along the left pavement to its spot.
    - 00:30-06:30 the stall stands on the pavement (0501 unlicensed vendor, zone pavement).
    - 06:30-06:36 the vendor wheels it away.
    """
    rng = _rng("market_vendor", seed)
    cam = _market_camera(width, height)
    dur = 480.0
    actors = _stall_actors(rng, 30.0, 390.0)
    actors += _pedestrians(rng, MARKET, dur, 9.0) + _traffic(rng, MARKET, dur, 14.0)
    return _scenario(
        "market_vendor",
        seed=seed,
        width=width,
        height=height,
        fps=fps,
        start_time=start_time,
        duration=dur,
        stage=Stage(cam, MARKET, LIGHTINGS["day"]),
        actors=_clip(actors, dur),
        truth=[TruthViolation("0501", "unlicensed_vendor", 30.0, 390.0, "pavement")],
        zones=_market_zones(cam),
        site="market",
        description=market_vendor.__doc__ or "",
    )


def vendor_bus_occlusion(
    seed: int, width: int, height: int, fps: float, start_time: datetime
) -> Scenario:
    """Market street, pole camera (5 m), 8 minutes, overcast.

    - 00:14-00:20 a vendor wheels a stall to the left pavement.
    - 00:20-06:20 the stall stands there (0501, zone pavement).
    - 02:50-03:10 a bus stops in the near-left lane in front of the stall and hides it for
      about 20 s (the stall is absent from the frames' objects while hidden), then drives on.
    - 06:20-06:26 the vendor leaves. People and cars pass throughout.
    """
    rng = _rng("vendor_bus_occlusion", seed)
    cam = _market_camera(width, height, height_m=5.0)
    dur = 480.0
    actors = _stall_actors(rng, 20.0, 380.0)
    lane = MARKET.kerb_left + 1.6
    bus = Actor(
        "bus",
        rng.randrange(1 << 30),
        ((160.0, lane, 130.0), (170.0, lane, 15.5), (190.0, lane, 15.5), (190.5, lane, 14.0)),
        heading=-1,
        plate=random_plate(rng, "浙"),
    )
    actors.append(bus)
    actors += _pedestrians(rng, MARKET, dur, 10.0, crossing=False)
    actors += [
        a for a in _traffic(rng, MARKET, dur, 16.0) if a.heading > 0 or a.end < 150 or a.start > 200
    ]
    return _scenario(
        "vendor_bus_occlusion",
        seed=seed,
        width=width,
        height=height,
        fps=fps,
        start_time=start_time,
        duration=dur,
        stage=Stage(cam, MARKET, LIGHTINGS["overcast"]),
        actors=_clip(actors, dur),
        truth=[TruthViolation("0501", "unlicensed_vendor", 20.0, 380.0, "pavement")],
        zones=_market_zones(cam),
        site="market",
        description=vendor_bus_occlusion.__doc__ or "",
    )


def shop_front(seed: int, width: int, height: int, fps: float, start_time: datetime) -> Scenario:
    """Market street, pole camera, 7 minutes, morning light.

    - 00:00 two stacks of goods stand inside a shop's door line (allowed).
    - 01:00-02:05 they are pushed out past the painted door line, one after the other.
    - from about 01:25 to the end (>= 5 min) goods stand outside the door line
      (0504 trading outside the shop, zone shop_front). People pass throughout.
    """
    rng = _rng("shop_front", seed)
    cam = _market_camera(width, height)
    dur = 420.0
    goods, cross = _goods_creep(rng, 60.0, MARKET)
    actors = goods + _pedestrians(rng, MARKET, dur, 10.0) + _traffic(rng, MARKET, dur, 15.0)
    return _scenario(
        "shop_front",
        seed=seed,
        width=width,
        height=height,
        fps=fps,
        start_time=start_time,
        duration=dur,
        stage=Stage(cam, MARKET, LIGHTINGS["morning"]),
        actors=_clip(actors, dur),
        truth=[TruthViolation("0504", "shop_front_overflow", round(cross, 1), dur, "shop_front")],
        zones=_market_zones(cam),
        site="market",
        description=shop_front.__doc__ or "",
    )


def _parker(rng: random.Random, t_in: float, t_out: float) -> tuple[Actor, str]:
    assert PARKING.no_parking is not None
    x0, x1, z0, z1 = PARKING.no_parking
    x, z = (x0 + x1) / 2, (z0 + z1) / 2
    lane = -PARKING.road_w / 4 + 0.6
    plate = random_plate(rng, "浙")
    car = Actor(
        "car",
        rng.randrange(1 << 30),
        (
            (t_in - 12, lane, 90.0),
            (t_in - 3, lane, z + 3.0),
            (t_in, x, z),
            (t_out, x, z),
            (t_out + 3, lane, z - 1.0),
            (t_out + 4, lane, z - 3.4),
        ),
        heading=-1,
        plate=plate,
    )
    return car, plate


def no_parking(seed: int, width: int, height: int, fps: float, start_time: datetime) -> Scenario:
    """Parking street, pole camera, 12 minutes, daylight.

    - 00:18-00:30 a car drives in and pulls into the yellow no-parking box.
    - 00:30-10:30 it stays parked, front plate towards the camera (0505 illegally parked
      motor vehicle, zone no_parking, truth.plate = its plate text).
    - 10:30-10:34 it pulls out and leaves. Other cars and people pass; none stop in the box.
    """
    rng = _rng("no_parking", seed)
    cam = _parking_camera(width, height)
    dur = 720.0
    car, plate = _parker(rng, 30.0, 630.0)
    actors = [car, *_pedestrians(rng, PARKING, dur, 12.0, crossing=False)]
    actors += _traffic(rng, PARKING, dur, 15.0, keep_clear=PARKING.kerb_left + 2.2)
    return _scenario(
        "no_parking",
        seed=seed,
        width=width,
        height=height,
        fps=fps,
        start_time=start_time,
        duration=dur,
        stage=Stage(cam, PARKING, LIGHTINGS["day"]),
        actors=_clip(actors, dur),
        truth=[TruthViolation("0505", "illegal_parking", 30.0, 630.0, "no_parking", plate)],
        zones=_parking_zones(cam),
        site="parking",
        description=no_parking.__doc__ or "",
    )


def passers_by(seed: int, width: int, height: int, fps: float, start_time: datetime) -> Scenario:
    """Market street, pole camera, 5 minutes, dusk: only people walking and cars driving
    through. No violation (truth is empty); for false-alarm checks."""
    rng = _rng("passers_by", seed)
    cam = _market_camera(width, height)
    dur = 300.0
    actors = _pedestrians(rng, MARKET, dur, 5.0) + _traffic(rng, MARKET, dur, 8.0)
    return _scenario(
        "passers_by",
        seed=seed,
        width=width,
        height=height,
        fps=fps,
        start_time=start_time,
        duration=dur,
        stage=Stage(cam, MARKET, LIGHTINGS["dusk"], noise_sigma=4.0),
        actors=_clip(actors, dur),
        truth=[],
        zones=_market_zones(cam),
        site="market",
        description=passers_by.__doc__ or "",
    )


TRUCK_SPEED = 6.0
ROUTE_START = (28.6440, 121.2560)
ROUTE_END = (28.6520, 121.2680)


def _route(duration: float) -> tuple[tuple[float, float, float], ...]:
    """GPS fixes once a second along the street, at the truck's speed."""
    (la0, lo0), (la1, lo1) = ROUTE_START, ROUTE_END
    dist = ((la1 - la0) * 111_000) ** 2 + ((lo1 - lo0) * 97_500) ** 2
    length = dist**0.5
    pts = []
    for s in range(int(duration) + 1):
        f = min(1.0, s * TRUCK_SPEED / length)
        pts.append((float(s), round(la0 + (la1 - la0) * f, 6), round(lo0 + (lo1 - lo0) * f, 6)))
    return tuple(pts)


def truck_debris(seed: int, width: int, height: int, fps: float, start_time: datetime) -> Scenario:
    """Garbage truck rear camera, 4 minutes, driving at 6 m/s along the route.

    - the road, kerbs, lamps and buildings slide away behind the truck;
      cars follow now and then; people and bins stand at the roadside.
    - 01:35-01:38 the truck drops muck: three piles land on the road just behind it and
      recede (2101 road spillage, zone road, truth 01:35 to 01:50 while they are in view).
    - route: one GPS fix per second from (28.6440, 121.2560) towards (28.6520, 121.2680).
    """
    rng = _rng("truck_debris", seed)
    cam = _truck_camera(width, height)
    dur = 240.0
    lay = TRUCK_ROAD
    actors: list[Actor] = []
    for k in range(3):  # debris piles
        t0 = 95.0 + k * 1.2
        x = 1.8 + rng.uniform(-0.8, 0.8)
        actors.append(
            Actor(
                "debris",
                rng.randrange(1 << 30),
                ((t0, x, 3.0 - TRUCK_SPEED * t0), (t0 + 16.0, x, 3.0 - TRUCK_SPEED * t0)),
                drift=TRUCK_SPEED,
            )
        )
    t = 2.0
    while t < dur:  # roadside objects entering the view and receding
        label = rng.choice(("person", "person", "bin", "bin", "garbage", "bin_overflow"))
        x = rng.choice(
            (lay.kerb_left - rng.uniform(0.6, 2.5), lay.kerb_right + rng.uniform(0.6, 2.5))
        )
        z0 = 2.0 - TRUCK_SPEED * t
        actors.append(
            Actor(label, rng.randrange(1 << 30), ((t, x, z0), (t + 14.0, x, z0)), drift=TRUCK_SPEED)
        )
        t += rng.uniform(3.0, 9.0)
    t = 10.0
    while t < dur:  # a car follows for a while, then turns off (fades out far away)
        follow = rng.uniform(20, 40)
        lane = rng.choice((1.8, -1.8))
        heading = -1 if lane > 0 else 1
        actors.append(
            Actor(
                "car",
                rng.randrange(1 << 30),
                (
                    (t, lane, 90.0),
                    (t + 8, lane, rng.uniform(14, 25)),
                    (t + follow, lane, rng.uniform(14, 25)),
                    (t + follow + 8, lane, 95.0),
                ),
                heading=heading,
                plate=random_plate(rng, "浙"),
            )
        )
        t += follow + rng.uniform(10, 30)
    return _scenario(
        "truck_debris",
        seed=seed,
        width=width,
        height=height,
        fps=fps,
        start_time=start_time,
        duration=dur,
        stage=Stage(cam, lay, LIGHTINGS["day"], speed=TRUCK_SPEED),
        actors=_clip(actors, dur),
        truth=[TruthViolation("2101", "road_spillage", 95.0, 110.0, "road")],
        zones={"road": ground_zone(cam, lay.kerb_left, lay.kerb_right, 1.0, 120.0)},
        camera="truck",
        route=_route(dur),
        description=truck_debris.__doc__ or "",
    )


def market_street(seed: int, width: int, height: int, fps: float, start_time: datetime) -> Scenario:
    """Demo: market street, pole camera, 10 minutes (loops), daylight.

    - 00:00-10:00 an overflowing bin stands on the left pavement (2103, zone pavement).
    - 00:14-00:20 a vendor sets up; 00:20-09:20 the stall stays (0501, zone pavement);
      09:20-09:26 it leaves.
    - 01:00-02:05 goods are pushed past a shop's door line and stay to the end (0504,
      zone shop_front). People and cars pass throughout.
    """
    rng = _rng("market_street", seed)
    cam = _market_camera(width, height)
    dur = 600.0
    bin_z = 30.0
    actors = [stay("bin_overflow", rng.randrange(1 << 30), MARKET.kerb_left - 0.7, bin_z, 0.0, dur)]
    actors += _stall_actors(rng, 20.0, 560.0)
    goods, cross = _goods_creep(rng, 60.0, MARKET)
    actors += goods + _pedestrians(rng, MARKET, dur, 8.0) + _traffic(rng, MARKET, dur, 12.0)
    truth = [
        TruthViolation("2103", "bin_overflow", 0.0, dur, "pavement"),
        TruthViolation("0501", "unlicensed_vendor", 20.0, 560.0, "pavement"),
        TruthViolation("0504", "shop_front_overflow", round(cross, 1), dur, "shop_front"),
    ]
    return _scenario(
        "market_street",
        seed=seed,
        width=width,
        height=height,
        fps=fps,
        start_time=start_time,
        duration=dur,
        stage=Stage(cam, MARKET, LIGHTINGS["day"]),
        actors=_clip(actors, dur),
        truth=truth,
        zones=_market_zones(cam),
        site="market",
        description=market_street.__doc__ or "",
    )


def parking_street(
    seed: int, width: int, height: int, fps: float, start_time: datetime
) -> Scenario:
    """Demo: parking street, pole camera, 15 minutes (loops), daylight: the move-your-car
    loop's two outcomes, one car that leaves after the reminder and one that stays.

    - 00:18-00:30 car A pulls into the no-parking box; 00:30-02:30 it stays (0505, zone
      no_parking, with its plate); 02:30-02:34 it leaves.
    - 05:18-05:30 car B pulls into the same box; 05:30-14:30 it stays (0505, its own
      plate); 14:30-14:34 it leaves. Traffic and people pass.

    With the demo's one-minute dwell and a wait of 150 s (scene time) between the reminder
    and the recheck, A's recheck (about 04:00) finds the box empty and B's (about 09:00)
    finds B: one case closed as rectified after the reminder, one registered. The gaps
    between the cars are longer than a track's grace (30 s), so B is a new object.
    """
    rng = _rng("parking_street", seed)
    cam = _parking_camera(width, height)
    dur = 900.0
    car_a, plate_a = _parker(rng, 30.0, 150.0)
    car_b, plate_b = _parker(rng, 330.0, 870.0)
    actors = [car_a, car_b, *_pedestrians(rng, PARKING, dur, 10.0, crossing=False)]
    actors += _traffic(rng, PARKING, dur, 12.0, keep_clear=PARKING.kerb_left + 2.2)
    return _scenario(
        "parking_street",
        seed=seed,
        width=width,
        height=height,
        fps=fps,
        start_time=start_time,
        duration=dur,
        stage=Stage(cam, PARKING, LIGHTINGS["day"]),
        actors=_clip(actors, dur),
        truth=[
            TruthViolation("0505", "illegal_parking", 30.0, 150.0, "no_parking", plate_a),
            TruthViolation("0505", "illegal_parking", 330.0, 870.0, "no_parking", plate_b),
        ],
        zones=_parking_zones(cam),
        site="parking",
        description=parking_street.__doc__ or "",
    )


Builder = Callable[[int, int, int, float, datetime], Scenario]

BUILDERS: dict[str, Builder] = {
    "market_vendor": market_vendor,
    "vendor_bus_occlusion": vendor_bus_occlusion,
    "shop_front": shop_front,
    "no_parking": no_parking,
    "passers_by": passers_by,
    "truck_debris": truck_debris,
    "market_street": market_street,
    "parking_street": parking_street,
}
