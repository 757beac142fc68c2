// An incoming call must be noticed in a noisy hall: a ring tone (WebAudio), a system
// notification when the browser allows it, and a blinking page title.

let audioCtx = null;
let ringTimer = null;
let titleTimer = null;
let notification = null;
const baseTitle = document.title;

export function unlockAudio() {
  // browsers start audio only after a user gesture; called from the first click
  try {
    if (!audioCtx) audioCtx = new (window.AudioContext || window.webkitAudioContext)();
    if (audioCtx.state === "suspended") audioCtx.resume();
  } catch (e) {
    audioCtx = null;
  }
}

function beep() {
  if (!audioCtx) return;
  const now = audioCtx.currentTime;
  for (const [offset, freq] of [[0, 880], [0.25, 660], [0.5, 880]]) {
    const osc = audioCtx.createOscillator();
    const gain = audioCtx.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, now + offset);
    gain.gain.exponentialRampToValueAtTime(0.3, now + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.2);
    osc.connect(gain).connect(audioCtx.destination);
    osc.start(now + offset);
    osc.stop(now + offset + 0.22);
  }
}

export function askNotificationPermission() {
  if ("Notification" in window && Notification.permission === "default") {
    Notification.requestPermission().catch(() => {});
  }
}

export function startRinging(title, body) {
  stopRinging();
  unlockAudio();
  beep();
  ringTimer = setInterval(beep, 2000);
  let on = false;
  titleTimer = setInterval(() => {
    on = !on;
    document.title = on ? `【来电】${title}` : baseTitle;
  }, 800);
  if ("Notification" in window && Notification.permission === "granted") {
    try {
      notification = new Notification(title, { body, requireInteraction: true, tag: "tongban-call" });
      notification.onclick = () => window.focus();
    } catch (e) {
      notification = null;
    }
  }
}

export function stopRinging() {
  clearInterval(ringTimer);
  clearInterval(titleTimer);
  ringTimer = null;
  titleTimer = null;
  document.title = baseTitle;
  if (notification) notification.close();
  notification = null;
}
