// The box editor: correct an event's boxes on its snapshot, by mouse or by keyboard.
//
// Mouse: drag on the picture to draw a box, drag a box to move it, click one to select.
// Keyboard: Tab to a box; arrows move it (Shift: 5 % steps instead of 1 %); Alt+arrows
// make it wider/narrower, taller/shorter; N adds a box in the middle; Delete removes the
// selected one; L goes to its label. Save sends every box (normalised x1, y1, x2, y2).
(function () {
  "use strict";
  var root = document.getElementById("box-editor");
  var svg = document.getElementById("boxes");
  if (!root || !svg) return;
  var NS = "http://www.w3.org/2000/svg";
  var CSRF = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var objects = JSON.parse(root.getAttribute("data-objects") || "[]");
  var label = document.getElementById("box-label");
  var status = document.getElementById("box-status");
  var selected = objects.length ? 0 : -1;
  var MIN = 0.01;

  function clamp(v) { return Math.max(0, Math.min(1, v)); }
  function round(v) { return Math.round(v * 10000) / 10000; }

  function draw(focus) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    objects.forEach(function (o, i) {
      var b = o.box;
      var r = document.createElementNS(NS, "rect");
      r.setAttribute("x", b[0] * 1000);
      r.setAttribute("y", b[1] * 1000);
      r.setAttribute("width", (b[2] - b[0]) * 1000);
      r.setAttribute("height", (b[3] - b[1]) * 1000);
      r.setAttribute("tabindex", "0");
      r.setAttribute("class", i === selected ? "box selected" : "box");
      r.setAttribute("data-index", String(i));
      r.setAttribute("data-label", o.label);
      r.setAttribute("data-box", b.map(round).join(","));
      r.setAttribute("role", "button");
      r.setAttribute("aria-label", o.label);
      r.addEventListener("focus", function () { if (selected !== i) { selected = i; draw(true); } });
      svg.appendChild(r);
      var t = document.createElementNS(NS, "text");
      t.setAttribute("x", b[0] * 1000 + 6);
      t.setAttribute("y", Math.max(28, b[1] * 1000 - 6));
      t.textContent = o.label;
      svg.appendChild(t);
    });
    root.setAttribute("data-count", String(objects.length));
    label.value = selected >= 0 ? objects[selected].label : "";
    label.disabled = selected < 0;
    if (focus && selected >= 0) {
      var el = svg.querySelector('rect[data-index="' + selected + '"]');
      if (el && document.activeElement !== el) el.focus();
    }
  }

  function setBox(i, x1, y1, x2, y2) {
    objects[i].box = [round(clamp(x1)), round(clamp(y1)), round(clamp(x2)), round(clamp(y2))];
    status.textContent = "";
  }

  function move(dx, dy) {
    var b = objects[selected].box, w = b[2] - b[0], h = b[3] - b[1];
    var x1 = Math.max(0, Math.min(1 - w, b[0] + dx)), y1 = Math.max(0, Math.min(1 - h, b[1] + dy));
    setBox(selected, x1, y1, x1 + w, y1 + h);
  }

  function resize(dw, dh) {
    var b = objects[selected].box;
    setBox(selected, b[0], b[1], Math.max(b[0] + MIN, b[2] + dw), Math.max(b[1] + MIN, b[3] + dh));
  }

  function add(box) {
    var name = label.value.trim() || (selected >= 0 ? objects[selected].label : "person");
    objects.push({ label: name, box: box });
    selected = objects.length - 1;
  }

  function remove() {
    if (selected < 0) return;
    objects.splice(selected, 1);
    selected = Math.min(selected, objects.length - 1);
  }

  svg.addEventListener("keydown", function (e) {
    var step = e.shiftKey ? 0.05 : 0.01;
    var keys = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (keys[e.key] && selected >= 0) {
      if (e.altKey) resize(keys[e.key][0], keys[e.key][1]); else move(keys[e.key][0], keys[e.key][1]);
    } else if (e.key === "Delete" || e.key === "Backspace") {
      remove();
    } else if (e.key === "n" || e.key === "N") {
      add([0.4, 0.4, 0.6, 0.6]);
    } else if ((e.key === "l" || e.key === "L") && selected >= 0) {
      e.preventDefault();
      label.focus();
      label.select();
      return;
    } else {
      return;
    }
    e.preventDefault();
    draw(true);
  });

  label.addEventListener("input", function () {
    if (selected < 0) return;
    objects[selected].label = label.value.trim();
    var el = svg.querySelector('rect[data-index="' + selected + '"]');
    if (el) el.setAttribute("data-label", objects[selected].label);
  });
  label.addEventListener("change", function () { draw(false); });
  label.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); draw(true); } });

  function point(e) {
    var r = svg.getBoundingClientRect();
    return [clamp((e.clientX - r.left) / r.width), clamp((e.clientY - r.top) / r.height)];
  }

  var drag = null;
  svg.addEventListener("pointerdown", function (e) {
    var p = point(e), index = e.target.getAttribute && e.target.getAttribute("data-index");
    if (index !== null && index !== undefined) {
      selected = Number(index);
      drag = { kind: "move", from: p, box: objects[selected].box.slice() };
    } else {
      add([p[0], p[1], p[0], p[1]]);
      drag = { kind: "draw", from: p };
    }
    svg.setPointerCapture(e.pointerId);
    draw(false);
  });
  svg.addEventListener("pointermove", function (e) {
    if (!drag) return;
    var p = point(e);
    if (drag.kind === "move") {
      var b = drag.box, w = b[2] - b[0], h = b[3] - b[1];
      var x1 = Math.max(0, Math.min(1 - w, b[0] + p[0] - drag.from[0]));
      var y1 = Math.max(0, Math.min(1 - h, b[1] + p[1] - drag.from[1]));
      setBox(selected, x1, y1, x1 + w, y1 + h);
    } else {
      setBox(selected, Math.min(drag.from[0], p[0]), Math.min(drag.from[1], p[1]),
        Math.max(drag.from[0], p[0]), Math.max(drag.from[1], p[1]));
    }
    draw(false);
  });
  svg.addEventListener("pointerup", function () {
    if (drag && drag.kind === "draw") {
      var b = objects[selected].box;
      if (b[2] - b[0] < MIN || b[3] - b[1] < MIN) remove();  // a click, not a box
    }
    drag = null;
    draw(true);
  });

  document.getElementById("add-box").addEventListener("click", function () { add([0.4, 0.4, 0.6, 0.6]); draw(true); });
  document.getElementById("delete-box").addEventListener("click", function () { remove(); draw(true); });
  document.getElementById("save-boxes").addEventListener("click", function () {
    status.textContent = "…";
    fetch(root.getAttribute("data-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF, Accept: "application/json" },
      body: JSON.stringify({ objects: objects })
    }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    }).then(function (res) {
      status.textContent = res.ok ? "✓ " + res.body.saved : "✗ " + res.body.detail;
      root.setAttribute("data-saved", res.ok ? "1" : "0");
    }).catch(function (err) {
      status.textContent = "✗ " + err;
      root.setAttribute("data-saved", "0");
    });
  });

  draw(false);
})();
