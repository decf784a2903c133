// The report page: the phone's position, "is it one of these?", a code's questions and
// a photo preview. Everything here is optional: the form works without script.
"use strict";
(function () {
  const form = document.getElementById("report");
  if (!form) return;
  const lang = document.body.dataset.lang || "zh";
  const code = document.getElementById("code");
  const nearby = document.getElementById("nearby");
  const sameNote = document.getElementById("same-note");

  // Only the chosen code's questions are shown and sent.
  function showQuestions() {
    for (const set of document.querySelectorAll("fieldset.attrs")) {
      const on = set.dataset.code === code.value;
      set.hidden = !on;
      set.disabled = !on;
    }
  }
  code.addEventListener("change", showQuestions);
  showQuestions();

  function chooseSame(event) {
    const button = event.target.closest("button.same");
    if (!button) return;
    code.value = button.dataset.code;
    showQuestions();
    sameNote.hidden = false;
  }
  nearby.addEventListener("click", chooseSame);

  // "Is it one of these?" for a position the phone gave or the citizen typed.
  function text(tag, value, cls) {
    const el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  }
  async function loadNearby(lat, lon) {
    const url = `/report/nearby.json?lat=${encodeURIComponent(lat)}&lon=${encodeURIComponent(lon)}&lang=${lang}`;
    let data;
    try {
      const answer = await fetch(url, { headers: { Accept: "application/json" } });
      if (!answer.ok) return;
      data = await answer.json();
    } catch (err) {
      return;
    }
    nearby.replaceChildren();
    if (!data.reports.length) {
      nearby.append(text("p", nearby.dataset.wordsNone));
    } else {
      nearby.append(text("h2", nearby.dataset.wordsTitle));
      const list = document.createElement("ul");
      list.id = "nearby-list";
      for (const r of data.reports) {
        const item = document.createElement("li");
        item.dataset.token = r.token;
        item.dataset.code = r.code;
        item.append(text("span", r.name, "what"), " · ", text("span", r.status, "state"));
        item.append(text("span", r.away, "away"));
        const same = text("button", nearby.dataset.wordsSame, "same");
        same.type = "button";
        same.dataset.code = r.code;
        item.append(same);
        list.append(item);
      }
      nearby.append(list);
    }
    nearby.hidden = false;
  }

  const lat = document.getElementById("lat");
  const lon = document.getElementById("lon");
  const located = document.getElementById("located");
  const locate = document.getElementById("locate");
  const state = document.getElementById("locate-state");
  function typed() {
    located.value = "pin";
    const a = parseFloat(lat.value), b = parseFloat(lon.value);
    if (Number.isFinite(a) && Number.isFinite(b)) {
      placePin(a, b);
      loadNearby(a, b);
    }
  }
  if (lat && lon) {
    lat.addEventListener("change", typed);
    lon.addEventListener("change", typed);
  }
  if (locate) {
    if (!("geolocation" in navigator)) locate.hidden = true;
    locate.addEventListener("click", () => {
      state.textContent = locate.dataset.wordsBusy;
      navigator.geolocation.getCurrentPosition(
        (pos) => {
          const a = pos.coords.latitude.toFixed(6), b = pos.coords.longitude.toFixed(6);
          lat.value = a;
          lon.value = b;
          located.value = "gps";
          state.textContent = locate.dataset.wordsDone
            .replace("{lat}", a).replace("{lon}", b)
            .replace("{acc}", Math.round(pos.coords.accuracy));
          placePin(a, b);
          loadNearby(a, b);
        },
        (err) => {
          state.textContent = locate.dataset.wordsFailed.replace("{why}", err.message);
        },
        { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 },
      );
    });
  }

  // The pin map: a tap sets the position; + and - zoom around the pin.
  const map = document.getElementById("pin-map");
  const pin = document.getElementById("pin");
  let placePin = () => {};
  if (map && lat && lon) {
    const proj = JSON.parse(map.dataset.projection);
    const full = { w: parseFloat(map.dataset.width), h: parseFloat(map.dataset.height) };
    let view = { x: 0, y: 0, w: full.w, h: full.h };
    const toXY = (a, b) => ({
      x: proj.margin + (b - proj.minLon) * proj.kx * proj.scale,
      y: proj.margin + (proj.maxLat - a) * proj.scale,
    });
    const toLatLon = (x, y) => ({
      lat: proj.maxLat - (y - proj.margin) / proj.scale,
      lon: proj.minLon + (x - proj.margin) / (proj.kx * proj.scale),
    });
    function show() {
      map.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
      pin.setAttribute("r", (8 * view.w) / (map.clientWidth || 360));  // about 8 px on screen
    }
    placePin = (a, b) => {
      const p = toXY(a, b);
      pin.setAttribute("cx", p.x);
      pin.setAttribute("cy", p.y);
    };
    map.addEventListener("click", (event) => {
      const point = map.createSVGPoint();
      point.x = event.clientX;
      point.y = event.clientY;
      const at = point.matrixTransform(map.getScreenCTM().inverse());
      const where = toLatLon(at.x, at.y);
      lat.value = where.lat.toFixed(6);
      lon.value = where.lon.toFixed(6);
      located.value = "pin";
      placePin(where.lat, where.lon);
      loadNearby(lat.value, lon.value);
    });
    for (const button of document.querySelectorAll(".pin-tools button")) {
      button.addEventListener("click", () => {
        const factor = button.dataset.zoom === "in" ? 0.5 : 2;
        const cx = pin.getAttribute("cx") > 0 ? parseFloat(pin.getAttribute("cx")) : view.x + view.w / 2;
        const cy = pin.getAttribute("cy") > 0 ? parseFloat(pin.getAttribute("cy")) : view.y + view.h / 2;
        const w = Math.min(full.w, Math.max(full.w / 32, view.w * factor));
        const h = (w * full.h) / full.w;
        view = {
          x: Math.min(Math.max(cx - w / 2, 0), full.w - w),
          y: Math.min(Math.max(cy - h / 2, 0), full.h - h),
          w,
          h,
        };
        show();
      });
    }
    show();
    const a = parseFloat(lat.value), b = parseFloat(lon.value);
    if (Number.isFinite(a) && Number.isFinite(b)) placePin(a, b);
  }

  // A preview of the chosen photo (never uploaded until the form is sent).
  const photo = document.getElementById("photo");
  const preview = document.getElementById("preview");
  photo.addEventListener("change", () => {
    const file = photo.files && photo.files[0];
    if (!file) {
      preview.hidden = true;
      return;
    }
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
  });

  // One tap files one report: the button waits once the form is on its way.
  form.addEventListener("submit", () => {
    document.getElementById("send").disabled = true;
  });
})();
