// One call on screen: camera + microphone (and the document camera, 高拍仪) sent over one
// RTCPeerConnection to the server, which forwards the other participants' tracks back.
// The browser always offers: its own tracks sendonly plus one recvonly m-line per track it
// must receive; `media:renegotiate` asks for a new offer (docs/protocol.md).
import { get } from "./api.js";
import { dialog, fmtClock, h, replace, toast } from "./dom.js";
import { END_REASONS, errorText } from "./messages.js";
import * as socket from "./socket.js";

const RECONNECT_WAIT_MS = 10000;

/**
 * Opens the call view. `info`: {callId, role: "caller"|"callee"|"expert", homeSide: bool,
 * caseInfo, participants: [person], me}. Resolves when the call has ended and been rated.
 */
export function openCall(info) {
  return new Promise((resolve) => {
    const call = new CallView(info, resolve);
    window.__tongbanCall = call; // tests read pc.getStats() through this
    call.start();
  });
}

class CallView {
  constructor(info, done) {
    this.info = info;
    this.callId = info.callId;
    this.done = done;
    this.pc = null;
    this.local = null; // camera + mic stream
    this.documentTrack = null;
    this.documentSender = null;
    this.labels = new Map(); // transceiver -> "camera" | "document" | "audio"
    this.offered = false;
    this.pendingCandidates = [];
    this.negotiating = false;
    this.again = false;
    this.receiveMap = {};
    this.participants = new Map((info.participants || []).map((p) => [p.username, p]));
    this.ended = false;
    this.startedAt = Date.now();
    this.off = [];
    this.build();
  }

  // ---- the page ----------------------------------------------------------------------

  build() {
    const c = this.info.caseInfo || {};
    this.stateLine = h("div", { id: "call-state", class: "call-state", role: "status", "aria-live": "polite" }, "正在打开摄像头和麦克风…");
    this.recording = h("span", { id: "recording", class: "tag" }, "录像：等待开始");
    this.clock = h("span", { id: "call-clock", class: "elapsed", style: "font-size:1.2rem" }, "00:00");
    this.remoteBox = h("div", { id: "remote-videos", class: "remote" },
      h("div", { class: "tile waiting", id: "remote-placeholder" }));
    this.selfVideo = h("video", { id: "self-video", autoplay: true, muted: true, playsInline: true });
    this.selfDoc = h("video", { id: "self-document", autoplay: true, muted: true, playsInline: true });
    this.selfDocTile = h("div", { class: "tile", hidden: true }, this.selfDoc, h("span", { class: "label" }, "我的高拍仪"));
    this.audioBox = h("div", { hidden: true });
    this.muteBtn = h("button", { type: "button", class: "btn", id: "btn-mute", "aria-pressed": "false", onclick: () => this.toggleMute() }, "静音");
    this.camBtn = h("button", { type: "button", class: "btn", id: "btn-camera", "aria-pressed": "false", onclick: () => this.toggleCamera() }, "关闭摄像头");
    this.docBtn = h("button", { type: "button", class: "btn", id: "btn-document", "aria-pressed": "false", onclick: () => this.toggleDocument() }, "高拍仪");
    this.inviteBtn = this.info.homeSide && this.info.role === "callee"
      ? h("button", { type: "button", class: "btn", id: "btn-invite", onclick: () => this.invite() }, "邀请专家")
      : null;
    this.hangupBtn = h("button", { type: "button", class: "btn btn-danger btn-huge", id: "btn-hangup", onclick: () => this.hangup() }, "挂断");
    this.peopleLine = h("span", { id: "call-people" });
    this.root = h("section", { id: "call", class: "call", "aria-label": "通话" },
      h("div", { class: "call-head" },
        h("div", { class: "title" }, "视频协助通话 · ", c.case_no || "", " ", c.matter_name || "", " ", this.peopleLine),
        this.recording, this.clock),
      this.stateLine,
      h("div", { class: "stage" }, this.remoteBox,
        h("div", { class: "self" },
          h("div", { class: "tile" }, this.selfVideo, h("span", { class: "label" }, "我")),
          this.selfDocTile)),
      this.audioBox,
      h("div", { class: "controls" }, this.muteBtn, this.camBtn, this.docBtn, this.inviteBtn, this.hangupBtn));
    document.body.append(this.root);
    if (this.info.recording) this.recordingState(this.info.recording);
    this.renderPeople();
    this.tick = setInterval(() => {
      this.clock.textContent = fmtClock((Date.now() - this.startedAt) / 1000);
    }, 1000);
  }

  say(text, alert = false) {
    this.stateLine.textContent = text;
    this.stateLine.classList.toggle("alert", alert);
  }

  renderPeople() {
    const others = [...this.participants.values()]
      .filter((p) => p.username !== this.info.me.username)
      .map((p) => p.display_name || p.username);
    this.peopleLine.textContent = others.length ? `· 与 ${others.join("、")}` : "";
  }

  // ---- lifecycle ---------------------------------------------------------------------

  async start() {
    this.listen();
    let iceServers = [];
    try {
      const cfg = await get("/api/rtc-config");
      iceServers = cfg.ice_servers || [];
    } catch (err) {
      iceServers = []; // no STUN/TURN configured: host candidates inside the extranet
    }
    if (this.ended) return;
    await this.openMedia();
    if (this.ended) return;
    this.pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers });
    this.pc.addEventListener("icecandidate", (ev) => this.localCandidate(ev.candidate));
    this.pc.addEventListener("track", (ev) => this.remoteTrack(ev));
    this.pc.addEventListener("connectionstatechange", () => this.connectionChanged());
    if (this.local) {
      for (const track of this.local.getTracks()) {
        const t = this.pc.addTransceiver(track, { direction: "sendonly", streams: [this.local] });
        this.labels.set(t, track.kind === "audio" ? "audio" : "camera");
      }
    }
    const others = Math.max(1, this.participants.size - 1);
    this.ensureReceivers({ video: 2 * others, audio: others });
    this.say("正在连接音视频…");
    await this.negotiate();
  }

  async openMedia() {
    const attempts = [
      { video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: { echoCancellation: true, noiseSuppression: true } },
      { video: false, audio: true },
    ];
    for (const constraints of attempts) {
      try {
        this.local = await navigator.mediaDevices.getUserMedia(constraints);
        break;
      } catch (err) {
        toast(`无法打开${constraints.video ? "摄像头" : "麦克风"}：${mediaErrorText(err)}`, { error: true });
      }
    }
    if (this.local) {
      this.selfVideo.srcObject = this.local;
      this.cameraDeviceId = this.local.getVideoTracks()[0]?.getSettings().deviceId;
      if (!this.local.getVideoTracks().length) this.camBtn.disabled = true;
    } else {
      this.muteBtn.disabled = true;
      this.camBtn.disabled = true;
      this.say("未能打开摄像头和麦克风，只能观看对方画面。请检查设备和浏览器权限。", true);
    }
  }

  listen() {
    const mine = (fn) => (data) => {
      if (data.call_id === undefined || String(data.call_id) === String(this.callId)) fn(data);
    };
    this.off.push(
      socket.on("rtc:candidate", mine((d) => this.remoteCandidate(d.candidate))),
      socket.on("media:renegotiate", mine((d) => {
        if (d.needs) this.ensureReceivers(d.needs);
        this.negotiate();
      })),
      socket.on("call:recording", mine((d) => this.recordingState(d.state))),
      socket.on("call:reconnecting", mine((d) => {
        const who = d.who ? d.who.display_name || d.who.username : "对方";
        this.say(`${who} 的网络中断，正在等待其重新连接（最多 ${d.grace_s || 30} 秒）…`, true);
      })),
      socket.on("call:joined", mine((d) => {
        if (d.who) this.participants.set(d.who.username, d.who);
        this.renderPeople();
        const who = d.who ? d.who.display_name || d.who.username : "新成员";
        this.say(`${who}${d.role === "expert" ? "（业务专家）" : ""} 已加入通话`);
        const others = Math.max(1, this.participants.size - 1);
        this.ensureReceivers({ video: 2 * others, audio: others });
      })),
      socket.on("call:left", mine((d) => {
        if (d.who) this.participants.delete(d.who.username);
        this.renderPeople();
        this.say(`${d.who ? d.who.display_name || d.who.username : "一位成员"} 已离开通话`);
      })),
      socket.on("call:ended", mine((d) => this.finish(d.reason, d.by))),
    );
    this.off.push(socket.onConnectionState((state) => {
      if (this.ended) return;
      if (state === "reconnecting") this.say("与服务器的连接中断，正在重连…通话画面可能暂时停顿。", true);
      if (state === "connected" && this.offered) {
        this.say("已重新连接服务器。");
        this.negotiate(); // the server may have lost our leg while we were away
      }
    }));
  }

  connectionChanged() {
    const state = this.pc.connectionState;
    if (this.ended) return;
    if (state === "connected") {
      this.say("通话中");
      clearTimeout(this.restartTimer);
    } else if (state === "disconnected") {
      this.say("音视频连接不稳定，正在恢复…", true);
      this.restartTimer = setTimeout(() => this.negotiate({ iceRestart: true }), RECONNECT_WAIT_MS);
    } else if (state === "failed") {
      this.say("音视频连接中断，正在重新连接…", true);
      this.negotiate({ iceRestart: true });
    }
  }

  recordingState(state) {
    const text = { recording: "录像中", ready: "录像已保存", failed: "录像失败" }[state] || state;
    this.recording.textContent = text;
    this.recording.className = state === "recording" ? "rec" : state === "failed" ? "tag tag-red" : "tag tag-green";
    this.recording.dataset.state = state;
  }

  // ---- negotiation -------------------------------------------------------------------

  ensureReceivers(needs) {
    if (!this.pc) return;
    for (const kind of ["video", "audio"]) {
      const have = this.pc.getTransceivers().filter((t) => t.receiver.track.kind === kind && !this.labels.has(t)).length;
      for (let i = have; i < (needs[kind] || 0); i += 1) this.pc.addTransceiver(kind, { direction: "recvonly" });
    }
  }

  async negotiate(options = {}) {
    if (!this.pc || this.ended) return;
    if (this.negotiating) {
      this.again = true;
      this.againOptions = options;
      return;
    }
    this.negotiating = true;
    try {
      let opts = options;
      do {
        this.again = false;
        await this.offerOnce(opts);
        opts = this.againOptions || {};
        this.againOptions = null;
      } while (this.again && !this.ended);
    } finally {
      this.negotiating = false;
    }
  }

  async offerOnce({ iceRestart = false } = {}) {
    if (this.offered && this.pc.connectionState === "connecting") await this.connectedOrTimeout();
    try {
      const offer = await this.pc.createOffer({ iceRestart });
      await this.pc.setLocalDescription(offer);
      const tracks = {};
      for (const [t, label] of this.labels) if (t.mid !== null) tracks[t.mid] = label;
      const ack = await socket.emit("rtc:offer", { call_id: this.callId, sdp: this.pc.localDescription.sdp, tracks });
      if (this.ended) return;
      await this.pc.setRemoteDescription({ type: "answer", sdp: ack.sdp });
      this.receiveMap = ack.receive || this.receiveMap;
      this.offered = true;
      const queued = this.pendingCandidates.splice(0);
      for (const candidate of queued) this.sendCandidate(candidate);
      this.renderRemote();
      if (ack.needs) this.ensureReceivers(ack.needs);
      if (ack.renegotiate) this.again = true; // more remote tracks than this offer could carry
    } catch (err) {
      if (this.ended) return;
      console.error("negotiation failed", err);
      this.say(`音视频协商失败：${err.error ? errorText(err.error) : err.message}。正在重试…`, true);
      if (this.pc.signalingState === "have-local-offer") {
        try {
          await this.pc.setLocalDescription({ type: "rollback" });
        } catch (e) { /* nothing to undo */ }
      }
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.negotiate(), 3000);
    }
  }

  connectedOrTimeout() {
    return new Promise((resolve) => {
      const done = () => {
        this.pc.removeEventListener("connectionstatechange", check);
        clearTimeout(timer);
        resolve();
      };
      const check = () => {
        if (["connected", "failed", "closed"].includes(this.pc.connectionState)) done();
      };
      const timer = setTimeout(done, RECONNECT_WAIT_MS);
      this.pc.addEventListener("connectionstatechange", check);
    });
  }

  localCandidate(candidate) {
    if (!candidate || !candidate.candidate) return;
    if (this.offered) this.sendCandidate(candidate);
    else this.pendingCandidates.push(candidate); // the server has no leg before the first offer
  }

  sendCandidate(candidate) {
    const { candidate: line, sdpMid, sdpMLineIndex } = candidate;
    socket.emit("rtc:candidate", { call_id: this.callId, candidate: { candidate: line, sdpMid, sdpMLineIndex } }).catch((err) => {
      console.warn("candidate not taken", err.code);
    });
  }

  async remoteCandidate(candidate) {
    if (!this.pc || !candidate) return;
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (err) {
      console.warn("remote candidate refused", err);
    }
  }

  // ---- remote media ------------------------------------------------------------------

  remoteTrack(ev) {
    if (ev.track.kind === "audio") {
      const mid = ev.transceiver.mid;
      if (!this.audioBox.querySelector(`audio[data-mid="${mid}"]`)) {
        const audio = h("audio", { autoplay: true, dataset: { mid } });
        audio.srcObject = new MediaStream([ev.track]);
        this.audioBox.append(audio);
        audio.play().catch(() => {});
      }
    }
    this.renderRemote();
  }

  /** One tile per receiving video m-line the server sends on, labelled camera / 高拍仪. */
  renderRemote() {
    if (!this.pc) return;
    const active = this.pc.getTransceivers().filter((t) => !this.labels.has(t)
      && t.receiver.track.kind === "video" && t.mid !== null
      && (t.currentDirection === "recvonly" || t.currentDirection === "sendrecv"));
    const seenPeople = [];
    const tiles = active.map((t) => {
      const info = this.receiveMap[t.mid];
      let label;
      let kind;
      if (info) {
        const who = this.participants.get(info.participant);
        const name = who ? who.display_name || who.username : info.participant;
        kind = info.label === "document" ? "document" : "camera";
        label = kind === "document" ? `${name} 的高拍仪` : name;
      } else {
        // without the server's receive map: the first video is the face, the next the document
        kind = seenPeople.length === 0 ? "camera" : "document";
        label = kind === "camera" ? "对方" : "对方高拍仪";
      }
      seenPeople.push(t.mid);
      let tile = this.remoteBox.querySelector(`.tile[data-mid="${t.mid}"]`);
      if (!tile) {
        const video = h("video", { autoplay: true, muted: true, playsInline: true, class: "remote-video" });
        video.srcObject = new MediaStream([t.receiver.track]);
        tile = h("div", { class: "tile remote-tile", dataset: { mid: t.mid } }, video, h("span", { class: "label" }));
        video.play().catch(() => {});
      }
      tile.dataset.kind = kind;
      tile.querySelector(".label").textContent = label;
      return tile;
    });
    const same = tiles.length === this.remoteBox.children.length
      && tiles.every((tile, i) => this.remoteBox.children[i] === tile);
    if (tiles.length === 0) replace(this.remoteBox, h("div", { class: "tile waiting", id: "remote-placeholder" }));
    else if (!same) replace(this.remoteBox, tiles);
    for (const video of this.remoteBox.querySelectorAll("video")) video.play().catch(() => {});
  }

  // ---- controls ----------------------------------------------------------------------

  toggleMute() {
    const tracks = this.local ? this.local.getAudioTracks() : [];
    const muted = this.muteBtn.getAttribute("aria-pressed") !== "true";
    for (const t of tracks) t.enabled = !muted;
    this.muteBtn.setAttribute("aria-pressed", String(muted));
    this.muteBtn.textContent = muted ? "已静音（点击恢复）" : "静音";
  }

  toggleCamera() {
    const tracks = this.local ? this.local.getVideoTracks() : [];
    const off = this.camBtn.getAttribute("aria-pressed") !== "true";
    for (const t of tracks) t.enabled = !off;
    this.camBtn.setAttribute("aria-pressed", String(off));
    this.camBtn.textContent = off ? "摄像头已关（点击打开）" : "关闭摄像头";
  }

  async toggleDocument() {
    if (this.documentTrack) {
      // stop sending; the m-line stays for the next time (no renegotiation needed)
      this.documentTrack.stop();
      this.documentTrack = null;
      await this.documentSender.replaceTrack(null);
      this.selfDocTile.hidden = true;
      this.docBtn.setAttribute("aria-pressed", "false");
      this.docBtn.textContent = "高拍仪";
      return;
    }
    const source = await chooseDocumentSource(this.cameraDeviceId);
    if (!source) return;
    let stream;
    try {
      stream = source === "screen"
        ? await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false })
        : await navigator.mediaDevices.getUserMedia({
          video: { deviceId: { exact: source }, width: { ideal: 1920 }, height: { ideal: 1080 } }, audio: false,
        });
    } catch (err) {
      toast(`无法打开高拍仪：${mediaErrorText(err)}`, { error: true });
      return;
    }
    const track = stream.getVideoTracks()[0];
    track.contentHint = "detail"; // documents: sharp text over smooth motion
    track.addEventListener("ended", () => {
      if (this.documentTrack === track) this.toggleDocument();
    });
    this.documentTrack = track;
    this.selfDoc.srcObject = new MediaStream([track]);
    this.selfDocTile.hidden = false;
    this.docBtn.setAttribute("aria-pressed", "true");
    this.docBtn.textContent = "关闭高拍仪";
    if (this.documentSender) {
      await this.documentSender.replaceTrack(track);
    } else {
      const t = this.pc.addTransceiver(track, { direction: "sendonly" });
      this.labels.set(t, "document");
      this.documentSender = t.sender;
      this.renderRemote();
      await this.negotiate();
    }
    this.say("高拍仪画面已发送给对方");
    setTimeout(() => this.checkDocumentFlows(track), 4000);
  }

  /** Some capture devices (e.g. depth cameras) give frames a page can show but not send. */
  async checkDocumentFlows(track) {
    if (this.ended || this.documentTrack !== track || !this.documentSender) return;
    let frames = 0;
    (await this.documentSender.getStats()).forEach((s) => {
      if (s.type === "outbound-rtp") frames += s.framesEncoded || 0;
    });
    if (frames === 0) {
      this.say("所选高拍仪的画面无法发送给对方，请关闭后换一个画面来源。", true);
      toast("所选高拍仪的画面无法发送，请换一个来源（设备列表中的其他摄像头或共享屏幕）。", { error: true });
    }
  }

  async invite() {
    // the home locality's experts, offered as suggestions (typing a username still works)
    const experts = h("datalist", { id: "expert-list" });
    get(`/api/calls/${encodeURIComponent(this.callId)}/experts`).then((body) => {
      for (const e of body.experts || []) {
        experts.append(h("option", { value: e.username }, `${e.display_name} ${e.department || ""}`));
      }
    }).catch(() => {});
    const username = await dialog((close) => {
      const error = h("div", { class: "error-box", role: "alert", hidden: true });
      const form = h("form", { id: "invite-form" },
        h("h2", {}, "邀请专家"),
        h("p", { class: "hint" }, "请输入属地业务部门专家的账号，专家接听后加入本次通话。"),
        h("label", { for: "expert-username" }, "专家账号"),
        h("input", { id: "expert-username", name: "username", required: true, list: "expert-list",
                     placeholder: "例如 fq.expert" }),
        experts,
        error,
        h("div", { class: "btn-row" },
          h("button", { type: "submit", class: "btn btn-primary" }, "发出邀请"),
          h("button", { type: "button", class: "btn", onclick: () => close(null) }, "取消")));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const name = form.elements.username.value.trim();
        if (!name) return;
        try {
          await socket.emit("call:invite", { call_id: this.callId, username: name });
          close(name);
        } catch (err) {
          error.textContent = errorText(err.error);
          error.hidden = false;
        }
      });
      return form;
    });
    if (username) this.say(`已邀请专家 ${username}，正在等待其接听…`);
  }

  async hangup() {
    this.hangupBtn.disabled = true;
    this.say("正在挂断…");
    try {
      await socket.emit("call:hangup", { call_id: this.callId });
    } catch (err) {
      if (err.code !== "invalid_state") toast(`挂断时出错：${errorText(err.error)}`, { error: true });
    }
    this.finish("hangup", this.info.me);
  }

  // ---- the end -----------------------------------------------------------------------

  async finish(reason, by) {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.tick);
    clearTimeout(this.retryTimer);
    clearTimeout(this.restartTimer);
    for (const off of this.off) off();
    if (this.pc) this.pc.close();
    for (const t of this.local ? this.local.getTracks() : []) t.stop();
    if (this.documentTrack) this.documentTrack.stop();
    this.root.remove();
    const who = by && by.username !== this.info.me.username ? `（${by.display_name || by.username}）` : "";
    const text = `${END_REASONS[reason] || "通话已结束"}${who}，通话时长 ${fmtClock((Date.now() - this.startedAt) / 1000)}`;
    await rate(this.callId, this.info, text);
    this.done({ reason });
  }
}

async function chooseDocumentSource(cameraDeviceId) {
  let devices = [];
  try {
    devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput");
  } catch (err) {
    devices = [];
  }
  return dialog((close) => {
    const options = devices.map((d, i) => h("option", { value: d.deviceId },
      `${d.label || `摄像头 ${i + 1}`}${d.deviceId === cameraDeviceId ? "（当前人像摄像头）" : ""}`));
    const other = devices.find((d) => d.deviceId !== cameraDeviceId);
    const select = h("select", { id: "document-source", name: "source" }, options,
      navigator.mediaDevices.getDisplayMedia ? h("option", { value: "screen" }, "共享屏幕或窗口") : null);
    if (other) select.value = other.deviceId;
    else if (!devices.length) select.value = "screen";
    const form = h("form", { id: "document-form" },
      h("h2", {}, "高拍仪"),
      h("p", { class: "hint" }, "选择连接高拍仪的摄像头，或共享屏幕上的电子材料。对方将在人像画面旁看到这一路画面。"),
      h("label", { for: "document-source" }, "画面来源"),
      select,
      h("div", { class: "btn-row" },
        h("button", { type: "submit", class: "btn btn-primary" }, "开始发送"),
        h("button", { type: "button", class: "btn", onclick: () => close(null) }, "取消")));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      close(select.value || null);
    });
    return form;
  });
}

/** After every call: a 1-5 rating (R13) and, for the home side, "unnecessary" (R10). */
async function rate(callId, info, endedText) {
  await dialog((close) => {
    let score = 0;
    const error = h("div", { class: "error-box", role: "alert", hidden: true });
    const stars = [1, 2, 3, 4, 5].map((n) => h("button", {
      type: "button", class: "btn", "aria-pressed": "false", "aria-label": `${n} 分`, dataset: { score: n },
      onclick: () => {
        score = n;
        for (const b of stars) b.setAttribute("aria-pressed", String(Number(b.dataset.score) <= n));
      },
    }, `${n}★`));
    const comment = h("textarea", { id: "rating-comment", name: "comment", maxlength: 200, placeholder: "意见或建议（选填）" });
    const unnecessary = info.homeSide && info.role === "callee"
      ? h("input", { type: "checkbox", id: "unnecessary", name: "unnecessary" })
      : null;
    const form = h("form", { id: "rating-form" },
      h("h2", {}, "通话已结束"),
      h("p", { id: "ended-text" }, endedText),
      h("h3", {}, "请为本次视频协助评价（好差评）"),
      h("div", { class: "stars", role: "group", "aria-label": "评分" }, stars),
      h("label", { for: "rating-comment" }, "评价意见"),
      comment,
      unnecessary ? h("label", { for: "unnecessary", style: "font-weight:normal" }, unnecessary, " 标记为“不必要的协助请求”（申请地可自行判断的情形）") : null,
      error,
      h("div", { class: "btn-row" },
        h("button", { type: "submit", class: "btn btn-primary", id: "btn-rate" }, "提交评价"),
        h("button", { type: "button", class: "btn", onclick: () => close(null) }, "跳过")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!score) {
        error.textContent = "请先选择 1 到 5 分。";
        error.hidden = false;
        return;
      }
      try {
        await socket.emit("call:rate", { call_id: callId, score, comment: comment.value.trim() });
        if (unnecessary && unnecessary.checked) {
          await socket.emit("call:unnecessary", { call_id: callId, unnecessary: true });
        }
        toast("评价已提交，谢谢。");
        close(true);
      } catch (err) {
        error.textContent = errorText(err.error);
        error.hidden = false;
      }
    });
    return form;
  });
}

function mediaErrorText(err) {
  const name = err && err.name;
  return {
    NotAllowedError: "浏览器没有获得使用权限，请在地址栏左侧允许摄像头和麦克风",
    NotFoundError: "没有找到设备，请检查连接",
    NotReadableError: "设备被其他程序占用",
    OverconstrainedError: "设备不支持所需的画面规格",
    SecurityError: "当前网址不安全，请使用 HTTPS 访问",
  }[name] || (err && err.message) || "未知错误";
}
