// streamdash dashboard: live sockets that deliver htmx out-of-band swaps.
//
// 1. [data-live-socket]: pages whose rows/counters update live (overview, runs, run).
//    Every message is HTML with hx-swap-oob elements; htmx swaps them. Reconnects forever.
// 2. #viewer: the stream viewer. The server sends each chunk exactly once per connection,
//    in order, batched (~20 messages/s). Every message starts with
//    <span id="viewer-batch" data-first=".." data-next=".."> so the page knows which indices
//    it holds: a batch is shown only if it starts at the index after the last one shown;
//    anything else (a retry race) makes the page reconnect from that index. So a reconnect
//    never leaves a gap or a duplicate row.
"use strict";

(function () {
  const sink = () => document.body;
  const wsUrl = (path) => (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;

  function swapOob(html) {
    htmx.swap(sink(), html, { swapStyle: "none" });
    trimLists();
  }

  // Lists with data-max-rows keep only that many rows (live overview list).
  function trimLists() {
    for (const list of document.querySelectorAll("tbody[data-max-rows]")) {
      const max = Number(list.dataset.maxRows);
      list.querySelectorAll("tr.empty").forEach((row) => list.children.length > 1 && row.remove());
      while (list.children.length > max) list.lastElementChild.remove();
    }
  }

  function backoff(attempt) {
    return Math.min(5000, 250 * 2 ** attempt) * (0.75 + Math.random() / 2);
  }

  // --- 1. simple live pages -------------------------------------------------------------
  function liveSocket(dot) {
    let attempt = 0;
    const connect = () => {
      const socket = new WebSocket(wsUrl(dot.dataset.liveSocket));
      socket.onopen = () => { attempt = 0; dot.classList.add("on"); };
      socket.onmessage = (event) => swapOob(event.data);
      socket.onclose = (event) => {
        dot.classList.remove("on");
        if (event.code === 4401 || event.code === 4404) return;
        setTimeout(connect, backoff(attempt++));
      };
    };
    connect();
  }

  // --- 2. the stream viewer -------------------------------------------------------------
  function viewer(root) {
    const rows = root.querySelector("#chunk-rows");
    const scroller = root.querySelector("[data-role=scroller]");
    const counts = root.querySelector("[data-role=counts]");
    const trimmed = root.querySelector("[data-role=trimmed]");
    const pauseButton = root.querySelector("[data-action=pause]");
    const followBox = root.querySelector("[data-action=follow]");
    const maxRows = Number(root.dataset.maxRows || 5000);
    const path = root.dataset.socket; // ends with "from="
    let expected = Number(root.dataset.start); // the next index this page should show
    let shown = 0;
    let paused = false;
    let held = []; // messages received while paused, in order
    let socket = null;
    let attempt = 0;
    let finished = false;
    const HOLD_MAX = 2000;

    const setState = (text, cls) => {
      const state = document.getElementById("viewer-state");
      state.textContent = text;
      state.className = "state " + cls;
    };
    const updateCounts = () => {
      counts.textContent = `${shown.toLocaleString()} chunks shown` + (held.length ? ` · ${held.length} batches held` : "");
    };

    function connect() {
      if (finished) return;
      socket = new WebSocket(wsUrl(path + expected));
      const mine = socket;
      mine.onopen = () => { attempt = 0; };
      mine.onmessage = (event) => {
        if (mine !== socket) return;
        if (paused) {
          held.push(event.data);
          if (held.length >= HOLD_MAX) { mine.close(); socket = null; } // resume reconnects
          updateCounts();
          return;
        }
        apply(event.data);
      };
      mine.onclose = (event) => {
        if (mine !== socket) return;
        socket = null;
        if (finished || paused) return;
        if (event.code === 4401) { setState("logged out — reload to log in", "state-error"); return; }
        if (event.code === 4404) { setState("stream not found", "state-error"); return; }
        setState("reconnecting…", "state-catching");
        setTimeout(connect, backoff(attempt++));
      };
    }

    function reconnect() {
      if (socket) { const old = socket; socket = null; old.close(); }
      connect();
    }

    function apply(html) {
      const head = /id="viewer-batch" data-first="(\d+)" data-next="(\d+)" data-count="(\d+)" data-closed="(\d)" data-end="(\d)"/.exec(html);
      if (!head) return;
      const [first, next, count, , end] = head.slice(1).map(Number);
      if (first !== expected) { reconnect(); return; } // never a gap, never a duplicate
      swapOob(html);
      expected = next;
      shown += count;
      if (rows.children.length > maxRows) {
        while (rows.children.length > maxRows) rows.firstElementChild.remove();
        trimmed.hidden = false;
      }
      updateCounts();
      if (end === 1) finished = true;
      if (followBox.checked) scroller.scrollTop = scroller.scrollHeight;
    }

    function setPaused(value) {
      paused = value;
      pauseButton.setAttribute("aria-pressed", String(paused));
      pauseButton.textContent = paused ? "Resume" : "Pause";
      if (paused) return;
      const pending = held;
      held = [];
      for (const html of pending) apply(html);
      if (!socket && !finished) connect();
      updateCounts();
    }

    pauseButton.addEventListener("click", () => setPaused(!paused));
    root.querySelector("[data-action=latest]").addEventListener("click", () => {
      followBox.checked = true;
      if (paused) setPaused(false);
      scroller.scrollTop = scroller.scrollHeight;
    });
    for (const button of root.querySelectorAll("[data-view]")) {
      button.addEventListener("click", () => {
        for (const other of root.querySelectorAll("[data-view]")) other.setAttribute("aria-pressed", String(other === button));
        for (const pane of root.querySelectorAll("[data-pane]")) pane.hidden = pane.dataset.pane !== button.dataset.view;
        if (followBox.checked) scroller.scrollTop = scroller.scrollHeight;
      });
    }
    // Scrolling up stops following; scrolling back to the bottom resumes it.
    scroller.addEventListener("scroll", () => {
      followBox.checked = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
    }, { passive: true });

    // Tests and curious operators: the viewer's position.
    root.viewerState = () => ({ expected, shown, paused, finished, connected: !!socket && socket.readyState === 1 });
    connect();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-live-socket]").forEach(liveSocket);
    const root = document.getElementById("viewer");
    if (root) viewer(root);
  });
})();
