// The live lane page: renders journal frames from /ws/lanes/<ref>/events.
//
// Every frame is one journal row ({seq, method, params, request_id, turn_id,
// item_id, received_at}), delivered once and in order; after a reconnect the
// socket resumes with ?after=<last seq seen>, so rendering never repeats.
// All text goes through textContent: transcripts hold untrusted output.
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("live-config").textContent);
  const transcript = document.getElementById("live-transcript");
  const approvalsBox = document.getElementById("live-approvals");
  const statusBadge = document.getElementById("live-status");
  const connBadge = document.getElementById("live-conn");
  const tokensLabel = document.getElementById("live-tokens");
  const emptyNote = document.getElementById("live-empty");

  // The server's list (lanes.appserver.protocol), so the page keeps no copy.
  const APPROVAL_METHODS = new Set(config.approvalMethods);
  const REFUSALS = {
    4400: "bad request",
    4401: "not authorized: log in again",
    4404: "lane not found",
  };

  let lastSeq = 0;
  let turnCount = 0; // turns started so far: a turn's number in the lane
  let frameAt = null; // received_at of the frame being rendered
  const turns = new Map(); // turn id -> {root, title, status, items, diff}
  const items = new Map(); // item id -> {root, kind, body, ...}
  const approvals = new Map(); // JSON(request id) -> element

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function nearBottom() {
    return transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 80;
  }

  // -- turns ---------------------------------------------------------------

  function clock(iso) {
    if (!iso) return "";
    const at = new Date(iso);
    const today = at.toDateString() === new Date().toDateString();
    return today ? at.toLocaleTimeString() : at.toLocaleString();
  }

  // Titled by the turn's number in the lane (from turn/started frames) and
  // its start time; a turn whose start this page never saw (pruned from the
  // journal) is "Earlier turn".
  function turnBlock(turnId, at) {
    at = at || frameAt;
    const key = turnId || "(no turn)";
    let turn = turns.get(key);
    if (turn) return turn;
    if (emptyNote) emptyNote.remove();
    const root = make("section", "live-turn");
    root.dataset.turnId = key;
    const head = make("div", "live-turn-head");
    const title = make("span", "live-turn-title", turnId ? "Earlier turn" : "Lane");
    title.title = key;
    const when = make("span", "live-muted live-turn-time", clock(at));
    const status = make("span", "live-badge", "");
    head.append(title, when, status);
    const body = make("div", "live-turn-items");
    root.append(head, body);
    transcript.append(root);
    turn = { root: root, title: title, when: when, status: status, items: body, diff: null, number: 0 };
    turns.set(key, turn);
    return turn;
  }

  function turnStarted(turnId, at) {
    const turn = turnBlock(turnId, at);
    if (!turn.number) {
      turn.number = ++turnCount;
      turn.title.textContent = "Turn " + turn.number;
      turn.root.dataset.number = turn.number;
      turn.when.textContent = clock(at);
    }
    return turn;
  }

  // A reply preempted by a steer, an interject or a stop never gets its
  // item/completed: once anything else happens in its turn it is closed as
  // cut off, instead of looking like it is still being written.
  function cutOffReplies(turnId, exceptItemId) {
    for (const [itemId, entry] of items) {
      if (entry.kind !== "agent" || !entry.open || itemId === exceptItemId) continue;
      if (entry.turnId !== (turnId || "(no turn)")) continue;
      entry.open = false;
      entry.root.dataset.state = "cut-off";
      statusTag(entry, "cut off");
    }
  }

  function setTurnStatus(turn, status, error) {
    turn.status.textContent = status;
    turn.status.dataset.status = status;
    turn.root.dataset.status = status;
    if (error && error.message) {
      turn.items.append(make("div", "live-error", error.message));
    }
  }

  function setTurnDiff(turn, diff) {
    if (!turn.diff) {
      const details = make("details", "live-diff-block");
      details.append(make("summary", null, "Turn diff"));
      turn.diff = make("pre", "live-diff");
      details.append(turn.diff);
      turn.root.append(details);
    }
    fillDiff(turn.diff, diff || "");
  }

  function fillDiff(pre, diff) {
    pre.textContent = "";
    for (const line of diff.split("\n")) {
      let kind = "";
      if (line.startsWith("+") && !line.startsWith("+++")) kind = "add";
      else if (line.startsWith("-") && !line.startsWith("---")) kind = "del";
      else if (line.startsWith("@@")) kind = "hunk";
      pre.append(make("span", kind ? "live-diff-" + kind : null, line + "\n"));
    }
  }

  // -- items ---------------------------------------------------------------

  function textOf(content) {
    if (!Array.isArray(content)) return "";
    return content
      .map(function (part) { return part && part.text ? part.text : ""; })
      .filter(Boolean)
      .join("\n");
  }

  function commandText(command) {
    return Array.isArray(command) ? command.join(" ") : String(command || "");
  }

  function itemShell(turnId, itemId, kind, label) {
    const root = make("div", "live-item live-item-" + kind);
    root.dataset.itemId = itemId;
    const head = make("div", "live-item-head");
    head.append(make("span", "live-item-label", label));
    root.append(head);
    turnBlock(turnId).items.append(root);
    const entry = { root: root, head: head, kind: kind, turnId: turnId || "(no turn)" };
    if (itemId) items.set(itemId, entry);
    return entry;
  }

  function agentMessage(turnId, itemId) {
    let entry = items.get(itemId);
    if (!entry) {
      entry = itemShell(turnId, itemId, "agent", "Assistant");
      entry.body = make("div", "live-text");
      entry.root.append(entry.body);
    }
    return entry;
  }

  function statusTag(entry, status) {
    if (!entry.status) {
      entry.status = make("span", "live-badge");
      entry.head.append(entry.status);
    }
    entry.status.textContent = status || "";
    entry.status.dataset.status = status || "";
  }

  function renderItem(turnId, item, completed) {
    if (!item || !item.id) return;
    const type = item.type;
    if (!completed) cutOffReplies(turnId, item.id);
    let entry = items.get(item.id);
    if (type === "agentMessage") {
      entry = agentMessage(turnId, item.id);
      entry.open = !completed;
      // The completed item is authoritative: it replaces the deltas.
      if (completed || item.text) entry.body.textContent = item.text || entry.body.textContent;
      return;
    }
    if (type === "userMessage") {
      if (!entry) {
        entry = itemShell(turnId, item.id, "user", "User");
        entry.body = make("div", "live-text", textOf(item.content));
        entry.root.append(entry.body);
      }
      return;
    }
    if (type === "commandExecution") {
      if (!entry) {
        entry = itemShell(turnId, item.id, "command", "Command");
        entry.command = make("code", "live-command");
        entry.output = make("pre", "live-output");
        entry.root.append(entry.command, entry.output);
      }
      entry.command.textContent = "$ " + commandText(item.command);
      if (item.cwd) entry.command.title = item.cwd;
      let status = item.status || "";
      if (item.exitCode !== null && item.exitCode !== undefined) status += " (exit " + item.exitCode + ")";
      statusTag(entry, status);
      if (typeof item.aggregatedOutput === "string") entry.output.textContent = item.aggregatedOutput;
      return;
    }
    if (type === "fileChange") {
      if (!entry) {
        entry = itemShell(turnId, item.id, "files", "File changes");
        entry.body = make("div", "live-files");
        entry.root.append(entry.body);
      }
      statusTag(entry, item.status || "");
      entry.body.textContent = "";
      for (const change of item.changes || []) {
        const kind = change.kind && change.kind.type ? change.kind.type : "";
        const details = make("details", "live-file");
        details.open = true;
        details.append(make("summary", null, (kind ? kind + " " : "") + (change.path || "")));
        const pre = make("pre", "live-diff");
        fillDiff(pre, change.diff || "");
        details.append(pre);
        entry.body.append(details);
      }
      return;
    }
    if (type === "reasoning") {
      const summary = Array.isArray(item.summary) ? item.summary.join("\n") : "";
      if (!summary && !completed) return;
      if (!entry) {
        entry = itemShell(turnId, item.id, "reasoning", "Reasoning");
        entry.body = make("div", "live-text live-muted");
        entry.root.append(entry.body);
      }
      entry.body.textContent = summary;
      return;
    }
    // Anything else (tool calls, web search, compaction...): type and fields.
    if (!entry) {
      entry = itemShell(turnId, item.id, "other", type || "item");
      entry.body = make("pre", "live-json");
      entry.root.append(entry.body);
    }
    statusTag(entry, item.status || (completed ? "completed" : ""));
    entry.body.textContent = JSON.stringify(item, null, 1).slice(0, 4000);
  }

  // -- approvals -----------------------------------------------------------

  // A card in the turn keeps the history; while an approval is unanswered a
  // copy also sits above the transcript, where it cannot scroll out of view.
  function approvalRequested(frame, turnId) {
    const params = frame.params || {};
    const key = JSON.stringify(frame.request_id);
    const what = params.command
      ? "$ " + commandText(params.command)
      : params.reason || params.path || "";

    function card() {
      const node = make("div", "live-approval");
      node.dataset.state = "waiting";
      node.append(
        make("strong", null, "Approval requested"),
        make("span", null, frame.method.replace(/^item\//, "")),
        make("code", "live-command", what),
        make("span", "live-badge live-approval-state", "waiting"),
      );
      node.querySelector(".live-approval-state").dataset.status = "waiting_approval";
      return node;
    }

    const inTurn = card();
    turnBlock(turnId).items.append(inTurn);
    const pending = card();
    approvalsBox.append(pending);
    approvals.set(key, {
      inTurn: inTurn, pending: pending, itemId: params.itemId, turnId: turnId, held: null,
    });
  }

  function setApprovalState(entry, state, text) {
    for (const node of [entry.inTurn, entry.pending]) {
      node.dataset.state = state;
      const badge = node.querySelector(".live-approval-state");
      badge.textContent = text;
      badge.dataset.status = state === "held" ? "waiting_approval" : state;
    }
  }

  // dispatch/approval/pending: the worker holds the request for a person.
  // It names the held row (requestId) and the item, not the JSON-RPC id.
  function heldEntry(p) {
    let found = null;
    for (const entry of approvals.values()) {
      if (entry.itemId && entry.itemId === p.itemId) return entry;
      if (!entry.held && entry.turnId === p.turnId) found = entry;
    }
    return found;
  }

  function approvalHeld(p) {
    const entry = heldEntry(p);
    if (!entry) return;
    entry.held = p.requestId;
    setApprovalState(entry, "held", "waiting for you");
    const buttons = make("span", "live-approval-buttons");
    for (const [decision, label] of [["accept", "Accept"], ["decline", "Decline"]]) {
      const button = make("button", "button live-approval-" + decision, label);
      button.type = "button";
      button.addEventListener("click", function () { respond(p.requestId, decision, buttons); });
      buttons.append(button);
    }
    entry.pending.append(buttons);
  }

  function approvalAnswered(p) {
    for (const entry of approvals.values()) {
      if (entry.held !== p.requestId) continue;
      setApprovalState(entry, "answered", p.decision + " by " + (p.answeredBy || "?"));
      const buttons = entry.pending.querySelector(".live-approval-buttons");
      if (buttons) buttons.remove();
    }
  }

  function approvalResolved(requestId) {
    const key = JSON.stringify(requestId);
    const entry = approvals.get(key);
    if (!entry) return;
    approvals.delete(key);
    entry.pending.remove();
    const badge = entry.inTurn.querySelector(".live-approval-state");
    const answered = entry.inTurn.dataset.state === "answered";
    entry.inTurn.dataset.state = "resolved";
    badge.textContent = answered ? badge.textContent : "resolved";
    badge.dataset.status = "resolved";
  }

  // -- lane status ---------------------------------------------------------

  function threadStatus(status) {
    const type = status && status.type;
    if (type === "active") {
      const flags = status.activeFlags || [];
      return flags.indexOf("waitingOnApproval") >= 0 ? "waiting_approval" : "busy";
    }
    return { idle: "idle", systemError: "error", notLoaded: "idle" }[type] || "unknown";
  }

  function setLaneStatus(status) {
    statusBadge.textContent = status;
    statusBadge.dataset.status = status;
  }

  // -- frames --------------------------------------------------------------

  function render(frame) {
    frameAt = frame.received_at;
    const p = frame.params || {};
    const turnId = frame.turn_id || p.turnId || (p.turn && p.turn.id) || null;
    switch (frame.method) {
      case "turn/started":
        setTurnStatus(turnStarted(turnId, frame.received_at), "inProgress");
        setLaneStatus("busy");
        setActive(true);
        break;
      case "turn/completed": {
        const turn = p.turn || {};
        cutOffReplies(turnId, null);
        setTurnStatus(turnBlock(turnId), turn.status || "completed", turn.error);
        setActive(false);
        break;
      }
      case "item/started":
        renderItem(turnId, p.item, false);
        break;
      case "item/completed":
        renderItem(turnId, p.item, true);
        break;
      case "item/agentMessage/delta": {
        const entry = agentMessage(turnId, p.itemId);
        entry.open = true;
        entry.body.textContent += p.delta || "";
        break;
      }
      case "item/commandExecution/outputDelta": {
        const entry = items.get(p.itemId);
        if (entry && entry.output) entry.output.textContent += p.delta || "";
        break;
      }
      case "turn/diff/updated":
        setTurnDiff(turnBlock(turnId), p.diff);
        break;
      case "thread/status/changed":
        setLaneStatus(threadStatus(p.status));
        break;
      case "thread/archived":
        setLaneStatus("archived");
        break;
      case "serverRequest/resolved":
        approvalResolved(p.requestId);
        break;
      case "dispatch/approval/pending":
        approvalHeld(p);
        break;
      case "dispatch/approval/answered":
        approvalAnswered(p);
        break;
      case "thread/tokenUsage/updated": {
        const total = p.tokenUsage && p.tokenUsage.total;
        if (total) tokensLabel.textContent = total.totalTokens + " tokens";
        break;
      }
      case "error":
        if (!p.willRetry) {
          const message = (p.error && p.error.message) || JSON.stringify(p.error);
          turnBlock(turnId).items.append(make("div", "live-error", message));
        }
        break;
      default:
        if (frame.request_id !== null && APPROVAL_METHODS.has(frame.method)) {
          approvalRequested(frame, turnId);
        }
    }
  }

  // -- the socket ----------------------------------------------------------

  let backoff = 500;

  function setConn(state, text) {
    connBadge.dataset.state = state;
    connBadge.textContent = text;
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const url = scheme + window.location.host + config.wsPath + "?after=" + lastSeq;
    const socket = new WebSocket(url);
    socket.onopen = function () {
      backoff = 500;
      setConn("live", "live");
    };
    socket.onmessage = function (event) {
      // One JSON document per message: {"events": [frame, ...]}.
      const follow = nearBottom();
      for (const frame of JSON.parse(event.data).events) {
        if (frame.seq <= lastSeq) continue;
        try {
          render(frame);
        } finally {
          lastSeq = frame.seq;
        }
      }
      if (follow) transcript.scrollTop = transcript.scrollHeight;
    };
    socket.onclose = function (event) {
      if (REFUSALS[event.code]) {
        setConn("refused", REFUSALS[event.code]);
        showError("The live stream was refused: " + REFUSALS[event.code] +
          (event.reason ? " (" + event.reason + ")" : ""), "reload the page to try again");
        return;
      }
      setConn("connecting", "reconnecting");
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 8000);
    };
  }

  // -- errors, the message box, Stop, approvals ----------------------------

  const form = document.getElementById("live-send");
  const result = document.getElementById("live-send-result");
  const banner = document.getElementById("live-banner");
  const stopButton = document.getElementById("live-stop");

  function showError(message, hint) {
    banner.querySelector(".live-banner-text").textContent = message;
    banner.querySelector(".live-banner-hint").textContent = hint || "";
    banner.hidden = false;
  }

  banner.querySelector("button").addEventListener("click", function () {
    banner.hidden = true;
  });

  function setActive(active) {
    stopButton.disabled = !active;
  }
  setActive(config.active);

  function csrfToken() {
    return form.querySelector("input[name=csrfmiddlewaretoken]").value;
  }

  // POST to one of the page's op endpoints; the op's result, or null after
  // showing its error in the banner.
  async function post(url, data, what) {
    try {
      const response = await fetch(url, {
        method: "POST",
        body: data,
        headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
        credentials: "same-origin",
      });
      const body = await response.json();
      if (body.error) {
        showError(what + " failed: " + body.error.message, body.error.hint);
        return null;
      }
      banner.hidden = true;
      return body.result;
    } catch (error) {
      showError(what + " failed: " + error.message, "is the server running? (`dispatch up`)");
      return null;
    }
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    result.textContent = "sending…";
    const done = await post(config.sendUrl, new FormData(form), "Send (" + form.elements.mode.value + ")");
    result.textContent = done ? done.detail : "";
    if (done) form.elements.text.value = "";
    button.disabled = false;
  });

  stopButton.addEventListener("click", async function () {
    stopButton.disabled = true;
    // Form-encoded, even when empty: an empty multipart body is a 400.
    const done = await post(config.stopUrl, new URLSearchParams(), "Stop");
    result.textContent = done ? done.detail : "";
    if (!done) stopButton.disabled = false;
  });

  async function respond(id, decision, buttons) {
    for (const button of buttons.querySelectorAll("button")) button.disabled = true;
    const data = new URLSearchParams({ id: String(id), decision: decision });
    const done = await post(config.respondUrl, data, "Answering the approval");
    if (!done) for (const button of buttons.querySelectorAll("button")) button.disabled = false;
  }

  form.elements.text.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });

  connect();
})();
