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
  const turns = new Map(); // turn id -> {root, status, items, diff}
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

  function turnBlock(turnId) {
    const key = turnId || "(no turn)";
    let turn = turns.get(key);
    if (turn) return turn;
    if (emptyNote) emptyNote.remove();
    const root = make("section", "live-turn");
    root.dataset.turnId = key;
    const head = make("div", "live-turn-head");
    head.append(make("span", "live-turn-title", "Turn " + key.slice(0, 8)));
    const status = make("span", "live-badge", "");
    head.append(status);
    const body = make("div", "live-turn-items");
    root.append(head, body);
    transcript.append(root);
    turn = { root: root, status: status, items: body, diff: null };
    turns.set(key, turn);
    return turn;
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
    const entry = { root: root, head: head, kind: kind };
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
    let entry = items.get(item.id);
    if (type === "agentMessage") {
      entry = agentMessage(turnId, item.id);
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
    approvals.set(key, { inTurn: inTurn, pending: pending });
  }

  function approvalResolved(requestId) {
    const key = JSON.stringify(requestId);
    const entry = approvals.get(key);
    if (!entry) return;
    approvals.delete(key);
    entry.pending.remove();
    entry.inTurn.dataset.state = "resolved";
    const badge = entry.inTurn.querySelector(".live-approval-state");
    badge.textContent = "resolved";
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
    const p = frame.params || {};
    const turnId = frame.turn_id || p.turnId || (p.turn && p.turn.id) || null;
    switch (frame.method) {
      case "turn/started":
        setTurnStatus(turnBlock(turnId), "inProgress");
        setLaneStatus("busy");
        break;
      case "turn/completed": {
        const turn = p.turn || {};
        setTurnStatus(turnBlock(turnId), turn.status || "completed", turn.error);
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
      // One or more frames per message, one JSON object per line.
      const follow = nearBottom();
      for (const line of event.data.split("\n")) {
        const frame = JSON.parse(line);
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
        return;
      }
      setConn("connecting", "reconnecting");
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 8000);
    };
  }

  // -- the message box -----------------------------------------------------

  const form = document.getElementById("live-send");
  const result = document.getElementById("live-send-result");

  function csrfToken() {
    return form.querySelector("input[name=csrfmiddlewaretoken]").value;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    result.textContent = "sending…";
    fetch(config.sendUrl, {
      method: "POST",
      body: new FormData(form),
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (response) { return response.json(); })
      .then(function (body) {
        if (body.error) {
          result.textContent = body.error.message + (body.error.hint ? " (" + body.error.hint + ")" : "");
          result.dataset.state = "error";
        } else {
          result.textContent = body.result.detail;
          result.dataset.state = "ok";
          form.elements.text.value = "";
        }
      })
      .catch(function (error) {
        result.textContent = "send failed: " + error;
        result.dataset.state = "error";
      })
      .finally(function () { button.disabled = false; });
  });

  form.elements.text.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });

  connect();
})();
