// xiuhua console: the device page's talk button (高空喊话). Hold it (mouse, touch or the
// space bar) to record with MediaRecorder; release to send the recording to the hub,
// which converts it and sends the unit a signed speaker.play_clip. The status line then
// follows the command's state as the speak panel does.
(function () {
  "use strict";
  var box = document.getElementById("talk");
  if (!box) return;
  var button = document.getElementById("talk-button");
  var status = document.getElementById("talk-status");
  var tag = document.querySelector('meta[name="csrf-token"]');
  var CSRF = tag ? tag.getAttribute("content") : "";
  var stream = null, recorder = null, chunks = [], holding = false, current = null, limit = null;

  function say(text, state) {
    status.textContent = text;
    if (state) status.setAttribute("data-cmd-state", state);
  }

  function microphone() {
    if (stream) return Promise.resolve(stream);
    if (!navigator.mediaDevices || !window.MediaRecorder) return Promise.reject(new Error("no MediaRecorder"));
    return navigator.mediaDevices.getUserMedia({ audio: true }).then(function (s) { stream = s; return s; });
  }

  function kind() {
    var types = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm"];
    for (var i = 0; i < types.length; i++) if (MediaRecorder.isTypeSupported(types[i])) return types[i];
    return "";
  }

  function start() {
    if (holding) return;
    holding = true;
    microphone().then(function (s) {
      if (!holding) return;  // released before the microphone opened
      var type = kind();
      recorder = new MediaRecorder(s, type ? { mimeType: type } : undefined);
      chunks = [];
      recorder.ondataavailable = function (e) { if (e.data && e.data.size) chunks.push(e.data); };
      recorder.onstop = function () { send(new Blob(chunks, { type: recorder.mimeType || "audio/webm" })); };
      recorder.start();
      // The hub takes at most 30 s: a button held longer sends what was said so far.
      clearTimeout(limit);
      limit = setTimeout(stop, 29500);
      button.setAttribute("aria-pressed", "true");
      box.setAttribute("data-recording", "true");
      say(status.getAttribute("data-recording"), "recording");
    }).catch(function () {
      holding = false;
      say(status.getAttribute("data-no-mic"), "error");
    });
  }

  function stop() {
    clearTimeout(limit);
    if (!holding) return;
    holding = false;
    button.setAttribute("aria-pressed", "false");
    box.removeAttribute("data-recording");
    if (recorder && recorder.state !== "inactive") recorder.stop();
  }

  function send(blob) {
    // Opened from a case page (?case=N): the message is kept with that case too.
    var fromCase = new URLSearchParams(location.search).get("case");
    var url = box.getAttribute("data-url") + (/^\d+$/.test(fromCase || "") ? "?case_id=" + fromCase : "");
    fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": blob.type.split(";")[0], "X-CSRF-Token": CSRF, Accept: "application/json" },
      body: blob
    }).then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j }; }); })
      .then(function (res) {
        if (!res.ok) { say(res.j.detail || "error", "error"); return; }
        current = res.j.cmd_id;
        status.setAttribute("data-cmd-id", current);
        say(status.getAttribute("data-sent"), res.j.state);
        poll();
      }).catch(function () { say("error", "error"); });
  }

  function poll() {
    if (!current) return;
    fetch(box.getAttribute("data-state-url") + encodeURIComponent(current), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (c) {
        say(c.label + (c.detail ? " · " + c.detail : ""), c.state);
        if (!c.final) setTimeout(poll, 500); else current = null;
      }).catch(function () { setTimeout(poll, 2000); });
  }

  // The phrase picker: the library by violation type; a pick fills the speak form's
  // sentence, which goes as speaker.say (the unit's TTS renders it).
  var pick = document.getElementById("phrase-pick");
  if (pick) {
    fetch(pick.getAttribute("data-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (types) {
        var zh = (document.documentElement.lang || "zh").indexOf("zh") === 0;
        types.forEach(function (type) {
          var group = document.createElement("optgroup");
          group.label = type.code + " " + (zh ? type.name_zh : type.name_en);
          type.phrases.forEach(function (text) {
            var option = document.createElement("option");
            option.value = option.textContent = text;
            group.appendChild(option);
          });
          pick.appendChild(group);
        });
      }).catch(function () {});
    pick.addEventListener("change", function () {
      var form = document.getElementById("speak-form");
      if (form && pick.value) { form.elements.text.value = pick.value; form.elements.clip.value = ""; }
    });
  }

  button.addEventListener("pointerdown", function (e) { e.preventDefault(); start(); });
  button.addEventListener("pointerup", stop);
  button.addEventListener("pointerleave", stop);
  button.addEventListener("pointercancel", stop);
  button.addEventListener("touchstart", function (e) { e.preventDefault(); start(); }, { passive: false });
  button.addEventListener("touchend", stop);
  button.addEventListener("contextmenu", function (e) { e.preventDefault(); });
  button.addEventListener("keydown", function (e) { if (e.code === "Space" && !e.repeat) { e.preventDefault(); start(); } });
  button.addEventListener("keyup", function (e) { if (e.code === "Space") { e.preventDefault(); stop(); } });
})();
