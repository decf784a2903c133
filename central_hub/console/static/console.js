// xiuhua console: live refresh over server-sent events, the map, countdowns, speak panel.
// Hand-written, no dependencies. Every state-changing fetch sends the CSRF token header.
(function () {
  "use strict";
  var meta = function (name) {
    var el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute("content") : "";
  };
  var CSRF = meta("csrf-token");
  var PREFIX = meta("console-prefix");
  var LANG = document.body.getAttribute("data-lang") || "zh";
  var PAGE = document.body.getAttribute("data-page");
  var SVGNS = "http://www.w3.org/2000/svg";

  // ---- countdowns -------------------------------------------------------------------
  var WORDS = LANG === "zh"
    ? { left: "剩余", over: "已超期", d: "天", h: "小时", m: "分", sep: "" }
    : { left: "left", over: "overdue by", d: "d", h: "h", m: "m", sep: " " };
  function duration(s) {
    s = Math.abs(Math.floor(s));
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return d + WORDS.d + WORDS.sep + h + WORDS.h;
    if (h) return h + WORDS.h + WORDS.sep + m + WORDS.m;
    return m + WORDS.m;
  }
  function tickCountdowns() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = (Date.parse(el.getAttribute("data-deadline")) - now) / 1000;
      el.textContent = left < 0 ? WORDS.over + " " + duration(left) : WORDS.left + " " + duration(left);
      el.classList.toggle("over", left < 0);
    });
  }
  tickCountdowns();
  setInterval(tickCountdowns, 1000);

  // ---- live refresh -----------------------------------------------------------------
  function refreshFragments(topics) {
    document.querySelectorAll("[data-live]").forEach(function (el) {
      if (topics.indexOf(el.getAttribute("data-live")) < 0) return;
      fetch(el.getAttribute("data-src"), { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) { el.innerHTML = html; tickCountdowns(); })
        .catch(function () {});
    });
  }
  var listeners = [];
  function onChange(fn) { listeners.push(fn); }
  function connect() {
    if (!window.EventSource || PAGE === "login" || PAGE === "error") return;
    var dot = document.getElementById("live-state");
    var es = new EventSource(PREFIX + "/live");
    es.onopen = function () { if (dot) dot.className = "live-dot on"; document.body.setAttribute("data-live-ready", "1"); };
    es.onerror = function () { if (dot) dot.className = "live-dot off"; };
    es.addEventListener("change", function (ev) {
      var topics = String(ev.data).split(",");
      refreshFragments(topics);
      listeners.forEach(function (fn) { fn(topics); });
    });
  }

  // ---- map --------------------------------------------------------------------------
  function setupMap() {
    var svg = document.getElementById("map");
    if (!svg) return;
    var W = parseFloat(svg.getAttribute("data-width")), H = parseFloat(svg.getAttribute("data-height"));
    var view = { x: 0, y: 0, w: W, h: H };
    function apply() { svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].join(" ")); }
    function zoom(factor, cx, cy) {
      var nw = Math.min(W * 2, Math.max(W / 40, view.w * factor));
      var nh = nw * H / W;
      cx = cx === undefined ? view.x + view.w / 2 : cx;
      cy = cy === undefined ? view.y + view.h / 2 : cy;
      view.x = cx - (cx - view.x) * nw / view.w;
      view.y = cy - (cy - view.y) * nh / view.h;
      view.w = nw; view.h = nh; apply();
      svg.setAttribute("data-zoom", (W / view.w).toFixed(2));
      loadSoon();
    }
    function toSvg(ev) {
      var r = svg.getBoundingClientRect();
      var s = Math.max(view.w / r.width, view.h / r.height);
      var ox = (r.width * s - view.w) / 2, oy = (r.height * s - view.h) / 2;
      return { x: view.x + (ev.clientX - r.left) * s - ox, y: view.y + (ev.clientY - r.top) * s - oy, s: s };
    }
    svg.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      var p = toSvg(ev);
      zoom(ev.deltaY < 0 ? 0.8 : 1.25, p.x, p.y);
    }, { passive: false });
    var drag = null;
    svg.addEventListener("pointerdown", function (ev) {
      if (ev.target.closest && ev.target.closest("a")) return;
      drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y, s: toSvg(ev).s };
      svg.setPointerCapture(ev.pointerId);
    });
    svg.addEventListener("pointermove", function (ev) {
      if (!drag) return;
      view.x = drag.vx - (ev.clientX - drag.x) * drag.s;
      view.y = drag.vy - (ev.clientY - drag.y) * drag.s;
      apply();
    });
    svg.addEventListener("pointerup", function () { if (drag) loadSoon(); drag = null; });
    document.querySelectorAll("[data-zoom]").forEach(function (b) {
      b.addEventListener("click", function () {
        var k = b.getAttribute("data-zoom");
        if (k === "in") zoom(0.7);
        else if (k === "out") zoom(1 / 0.7);
        else { view = { x: 0, y: 0, w: W, h: H }; apply(); svg.setAttribute("data-zoom", "1.00"); loadSoon(); }
      });
    });
    var layer = document.getElementById("markers");
    function el(name, attrs) {
      var e = document.createElementNS(SVGNS, name);
      Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
      return e;
    }
    function draw(data) {
      while (layer.firstChild) layer.removeChild(layer.firstChild);
      data.devices.forEach(function (d) {
        var a = el("a", { href: PREFIX + "/devices/" + encodeURIComponent(d.id), "data-device-id": d.id, "data-state": d.state, class: "dev" });
        a.appendChild(el("rect", { x: d.x - 7, y: d.y - 7, width: 14, height: 14, fill: d.colour, stroke: "#222", "stroke-width": 1 }));
        var title = el("title", {}); title.textContent = d.id + " · " + d.state; a.appendChild(title);
        layer.appendChild(a);
      });
      data.cases.forEach(function (c) {
        var a = el("a", { href: PREFIX + "/cases/" + c.id, "data-case-id": c.id, "data-stage": c.stage, "data-overdue": c.overdue ? "1" : "0", class: "case-marker" });
        if (c.overdue) a.appendChild(el("circle", { cx: c.x, cy: c.y, r: 13, fill: "none", stroke: "#d62828", "stroke-width": 4 }));
        a.appendChild(el("circle", { cx: c.x, cy: c.y, r: 9, fill: c.colour, stroke: "#fff", "stroke-width": 2 }));
        var title = el("title", {}); title.textContent = c.title; a.appendChild(title);
        layer.appendChild(a);
      });
      svg.setAttribute("data-cases", String(data.cases.length));
      svg.setAttribute("data-cases-in-view", String(data.cases_in_view));
      var more = document.getElementById("map-more");
      if (more) {
        more.hidden = data.cases_in_view <= data.cases.length;
        more.textContent = more.getAttribute("data-text")
          .replace("{total}", data.cases_in_view).replace("{shown}", data.cases.length);
      }
    }
    // Cases come for the view box on screen: a city's open cases do not all fit one map.
    function load() {
      // What is on screen: the view box plus the margins "meet" adds to fit the element.
      var r = svg.getBoundingClientRect(), box = [view.x, view.y, view.w, view.h];
      if (r.width > 0 && r.height > 0) {
        var s = Math.max(view.w / r.width, view.h / r.height);
        box = [view.x - (r.width * s - view.w) / 2, view.y - (r.height * s - view.h) / 2, r.width * s, r.height * s];
      }
      box = box.map(function (v) { return v.toFixed(1); }).join(",");
      fetch(PREFIX + "/data/map?view=" + box, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(draw).catch(function () {});
    }
    var pending = null;
    function loadSoon() { clearTimeout(pending); pending = setTimeout(load, 250); }
    load();
    onChange(function (topics) { if (topics.indexOf("cases") >= 0 || topics.indexOf("devices") >= 0) load(); });
  }

  // ---- uploads: say "too large" before sending ----------------------------------------
  document.querySelectorAll('input[type="file"][data-max]').forEach(function (input) {
    input.addEventListener("change", function () {
      var max = parseInt(input.getAttribute("data-max"), 10);
      var f = input.files && input.files[0];
      input.setCustomValidity(f && f.size > max ? (LANG === "zh" ? "照片过大" : "Photo too large") : "");
    });
  });

  // ---- speak panel ------------------------------------------------------------------
  function setupSpeak() {
    var form = document.getElementById("speak-form");
    if (!form) return;
    var status = document.getElementById("speak-status");
    var current = null;
    function poll() {
      if (!current) return;
      fetch(form.getAttribute("data-state-url") + encodeURIComponent(current), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (c) {
          status.textContent = c.kind + " · " + c.label + (c.detail ? " · " + c.detail : "");
          status.setAttribute("data-cmd-id", c.cmd_id);
          status.setAttribute("data-cmd-state", c.state);
          if (c.final) current = null;
        }).catch(function () {});
    }
    onChange(function (topics) { if (topics.indexOf("commands") >= 0) poll(); });
    setInterval(poll, 3000);  // a fallback when the stream is reconnecting
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var body = { clip: form.elements.clip.value, text: form.elements.text.value.trim() };
      if (!!body.clip === !!body.text) { status.textContent = status.getAttribute("data-need"); return; }
      fetch(form.getAttribute("data-url"), {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF, Accept: "application/json" },
        body: JSON.stringify(body)
      }).then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j }; }); })
        .then(function (res) {
          if (!res.ok) { status.textContent = res.j.detail || "error"; status.setAttribute("data-cmd-state", "error"); return; }
          current = res.j.cmd_id;
          status.textContent = status.getAttribute("data-sent");
          status.setAttribute("data-cmd-id", current);
          status.setAttribute("data-cmd-state", res.j.state);
          form.elements.text.value = "";
          refreshFragments(["commands"]);
          poll();
        });
    });
  }

  setupMap();
  setupSpeak();
  connect();
})();
