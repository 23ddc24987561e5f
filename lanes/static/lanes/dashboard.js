// The dashboard: one row per lane, refreshed whenever any lane's journal moves.
//
// One socket (/ws/events) follows every lane from its current end
// (after=latest); a frame only says "this changed", so the page refetches
// the rows (cheap: one query per column) instead of replaying lane state in
// the browser. A timer refetches too, so lanes created after the page opened
// appear, and the socket is reopened when the set of lanes changes.
// All text goes through textContent: titles and errors are user data.
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("dash-config").textContent);
  const body = document.querySelector("#dash-lanes tbody");
  const empty = document.getElementById("dash-empty");
  const conn = document.getElementById("dash-conn");
  const count = document.getElementById("dash-count");
  const filters = document.getElementById("dash-filters");
  const MAX_LANES = 200; // lanes.journal.reader.STREAM_MAX_LANES
  const REFUSALS = {
    4400: "refused: bad request",
    4401: "refused: log in again",
    4403: "refused: forbidden",
    4404: "refused: a lane is gone",
  };

  let rows = config.rows;
  let socket = null;
  let socketLanes = "";
  let backoff = 500;
  let pending = null;

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function link(href, text) {
    const a = make("a", null, text);
    a.href = href;
    return a;
  }

  function ago(iso) {
    if (!iso) return "never";
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 60) return seconds + " s ago";
    if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.round(seconds / 3600) + " h ago";
    return new Date(iso).toLocaleString();
  }

  function clock(iso) {
    return iso ? new Date(iso).toLocaleTimeString() : "";
  }

  // -- filters ---------------------------------------------------------------

  function wanted() {
    const values = {};
    for (const key of Object.keys(config.filters)) values[key] = filters.elements[key].value;
    return values;
  }

  function shown(row, want) {
    if (want.status === "" && row.status === "archived") return false;
    if (want.status && want.status !== "*" && row.status !== want.status) return false;
    if (want.host && row.host !== want.host) return false;
    if (want.source && row.source !== want.source) return false;
    return true;
  }

  for (const [key, value] of Object.entries(config.filters)) {
    if (value) filters.elements[key].value = value;
  }
  filters.addEventListener("change", function () {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(wanted())) if (value) query.set(key, value);
    const search = query.toString();
    history.replaceState(null, "", search ? "?" + search : window.location.pathname);
    draw();
  });

  // -- rows ------------------------------------------------------------------

  function turnCell(row) {
    const cell = make("td", "dash-turn");
    if (!row.turn_number) {
      cell.textContent = "no turns yet";
      return cell;
    }
    cell.append("Turn " + row.turn_number + " ");
    const badge = make("span", "dash-badge", row.active ? "inProgress" : row.turn_status);
    badge.dataset.status = row.active ? "busy" : row.turn_status;
    cell.append(badge, " " + clock(row.turn_started_at));
    if (row.error && !row.active) cell.append(make("span", "dash-error", row.error));
    return cell;
  }

  function rowNode(row) {
    const tr = make("tr");
    tr.dataset.ref = row.ref;
    tr.dataset.status = row.status;
    const name = make("td");
    name.append(link(row.admin_url, "@" + row.title), " ", make("code", null, row.ref));
    const status = make("td");
    const badge = make("span", "dash-badge dash-status", row.status);
    badge.dataset.status = row.status;
    status.append(badge);
    const queue = make("td", "dash-queue", row.queue + (row.queue_held ? " (held)" : ""));
    const last = make("td", "dash-last", ago(row.last_event_at));
    if (row.last_event_at) last.title = row.last_event_at;
    const live = make("td");
    live.append(link(row.live_url, "live"));
    tr.append(
      name, status, turnCell(row), queue, last,
      make("td", null, row.host), make("td", null, row.source), live,
    );
    return tr;
  }

  function draw(changed) {
    const want = wanted();
    const visible = rows.filter(function (row) { return shown(row, want); });
    body.replaceChildren.apply(body, visible.map(function (row) {
      const tr = rowNode(row);
      if (changed && changed.has(row.ref)) tr.dataset.flash = "1";
      return tr;
    }));
    empty.hidden = visible.length > 0;
    count.textContent = visible.length + " of " + rows.length + " lanes";
  }

  async function refetch() {
    try {
      const response = await fetch(config.rowsUrl, { credentials: "same-origin" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const fresh = (await response.json()).lanes;
      const before = new Map(rows.map(function (row) { return [row.ref, JSON.stringify(row)]; }));
      const changed = new Set(
        fresh.filter(function (row) { return before.get(row.ref) !== JSON.stringify(row); })
          .map(function (row) { return row.ref; })
      );
      rows = fresh;
      draw(changed);
      follow();
    } catch (error) {
      conn.dataset.state = "refused";
      conn.textContent = "cannot load lanes: " + error.message;
    }
  }

  // Frames come in bursts (a streaming reply is many deltas): one refetch each.
  function soon() {
    if (pending) return;
    pending = setTimeout(function () { pending = null; refetch(); }, 250);
  }

  // -- the socket ------------------------------------------------------------

  function setConn(state, text) {
    conn.dataset.state = state;
    conn.textContent = text;
  }

  function follow() {
    const refs = rows.slice(0, MAX_LANES).map(function (row) { return row.ref; });
    const key = refs.join(",");
    if (key === socketLanes && socket) return;
    socketLanes = key;
    if (socket) {
      const old = socket;
      socket = null;
      old.onclose = null;
      old.close();
    }
    if (!refs.length) {
      setConn("idle", "no lanes to follow");
      return;
    }
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const query = refs.map(function (ref) { return "lane=" + encodeURIComponent(ref); });
    const url = scheme + window.location.host + config.wsPath + "?" + query.join("&") + "&after=latest";
    const ws = new WebSocket(url);
    socket = ws;
    ws.onopen = function () {
      backoff = 500;
      setConn("live", "live");
    };
    ws.onmessage = soon;
    ws.onclose = function (event) {
      if (socket !== ws) return;
      socket = null;
      if (REFUSALS[event.code] && event.code !== 4404) {
        setConn("refused", REFUSALS[event.code] + (event.reason ? " (" + event.reason + ")" : ""));
        return;
      }
      // 4404: a lane went away; anything else: the server restarted.
      setConn("connecting", "reconnecting");
      socketLanes = "";
      setTimeout(refetch, backoff);
      backoff = Math.min(backoff * 2, 10000);
    };
  }

  draw();
  follow();
  setInterval(refetch, config.refreshSeconds * 1000);
})();
