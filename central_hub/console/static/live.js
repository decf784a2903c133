// Live view on the device page: an <img> on the camera's MJPEG stream is one viewer
// (closing it or the page ends the view); the overlay polls the newest frame's zones and
// detections and draws them over the picture.
(function () {
  "use strict";
  const panel = document.getElementById("live");
  if (!panel || !document.getElementById("live-img")) return;
  const base = panel.dataset.base;
  const img = document.getElementById("live-img");
  const svg = document.getElementById("live-svg");
  const view = document.getElementById("live-view");
  const stopButton = document.getElementById("live-stop");
  const overlay = document.getElementById("live-overlay");
  const status = document.getElementById("live-status");
  const BLANK = "data:image/gif;base64,R0lGODlhAQABAAAAACw=";
  const NS = "http://www.w3.org/2000/svg";
  let camera = null;
  let timer = null;

  function draw(data) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    if (!overlay.checked || data.seq === null) return;
    for (const [name, points] of Object.entries(data.zones || {})) {
      const poly = document.createElementNS(NS, "polygon");
      poly.setAttribute("points", points.map((p) => p.join(",")).join(" "));
      poly.setAttribute("class", "live-zone");
      poly.dataset.zone = name;
      svg.appendChild(poly);
    }
    for (const o of data.objects || []) {
      const rect = document.createElementNS(NS, "rect");
      rect.setAttribute("x", o.box[0]);
      rect.setAttribute("y", o.box[1]);
      rect.setAttribute("width", o.box[2] - o.box[0]);
      rect.setAttribute("height", o.box[3] - o.box[1]);
      rect.setAttribute("class", "live-object");
      rect.dataset.label = o.label;
      svg.appendChild(rect);
    }
  }

  async function poll() {
    if (camera === null) return;
    try {
      const r = await fetch(base + encodeURIComponent(camera) + "/overlay", {
        credentials: "same-origin",
      });
      if (r.ok) {
        const data = await r.json();
        draw(data);
        if (data.seq !== null) {
          status.textContent =
            camera + " · #" + data.seq + " · " + data.fps + " fps · " +
            status.dataset.viewers + " " + data.viewers;
          status.dataset.seq = data.seq;
        }
      }
    } catch (e) {
      status.textContent = String(e);
    }
  }

  function stop() {
    camera = null;
    if (timer !== null) clearInterval(timer);
    timer = null;
    img.src = BLANK; // aborts the stream: the hub ends this view
    view.hidden = true;
    stopButton.hidden = true;
    draw({ seq: null });
  }

  function watch(cam) {
    stop();
    camera = cam;
    const kase = panel.dataset.case;
    img.src = base + encodeURIComponent(cam) + "/stream" + (kase ? "?case=" + encodeURIComponent(kase) : "");
    view.hidden = false;
    stopButton.hidden = false;
    view.dataset.camera = cam;
    timer = setInterval(poll, 500);
  }

  for (const b of panel.querySelectorAll(".live-watch")) {
    b.addEventListener("click", () => watch(b.dataset.camera));
  }
  stopButton.addEventListener("click", stop);
  overlay.addEventListener("change", poll);
  window.addEventListener("pagehide", stop);
  if (panel.dataset.open) watch(panel.dataset.open);
})();
