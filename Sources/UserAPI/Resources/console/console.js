// userapi web console: plain ES2020, no framework, no build step. It runs
// under the console's Content-Security-Policy (script-src 'self'; no inline
// script or style, no eval), so it only uses DOM APIs and CSS classes, and
// puts user data into the page with textContent only (never innerHTML).
//
// Live updates: one WebSocket to /users/watch. The first message carries the
// token (browsers cannot set headers on a WebSocket); the server answers
// {"type":"ready","latest":seq}, then one message per change. A lost
// connection is retried with backoff (1 s, 2 s, 4 s ... 15 s) and resumes
// after the last seq received; 1008 with "re-list" reloads the list and
// follows the feed again without since.
"use strict";

(() => {
  const TOKEN_KEY = "userapi.console.token";
  const MIN_TOKEN_LENGTH = 16;
  const SEARCH_DELAY_MS = 300;
  const BACKOFF_START_MS = 1000;
  const BACKOFF_MAX_MS = 15000;
  const NEW_SINCE_MAX = 20;
  const USER_FIELDS = ["name", "username", "email"];

  const $ = (id) => document.getElementById(id);
  const el = {
    instance: $("instance"),
    live: $("live"),
    liveText: $("live-text"),
    tokenForm: $("token-form"),
    token: $("token"),
    tokenError: $("token-error"),
    tokenForget: $("token-forget"),
    tokenStatus: $("token-status"),
    formHeading: $("form-heading"),
    userForm: $("user-form"),
    userSubmit: $("user-submit"),
    userCancel: $("user-cancel"),
    formStatus: $("form-status"),
    searchForm: $("search-form"),
    search: $("search"),
    pageSize: $("page-size"),
    listStatus: $("list-status"),
    usersHeading: $("users-heading"),
    tbody: $("users-body"),
    listCount: $("list-count"),
    firstPage: $("first-page"),
    nextPage: $("next-page"),
    newSince: $("new-since"),
    newSinceList: $("new-since-list"),
  };
  const input = (field) => $("user-" + field);
  const fieldError = (field) => $("user-" + field + "-error");

  const state = {
    token: null,
    // The page shown: the URL it was loaded from, its rows, the next page's URL (Link rel="next").
    pageUrl: null,
    rows: [],
    nextUrl: null,
    limit: 20,
    q: "",
    loading: null, // the AbortController of the list request in flight
    loadingUrl: null, // and the URL it asks for
    queued: [], // feed events that arrived while the list was loading, applied after it
    newSince: new Map(), // id -> user: created since the page was loaded and not on it
    editing: null, // {id, etag} while the form edits a user
    confirming: null, // the id whose row asks "Really delete?"
  };

  // ---- HTTP -----------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || (status ? "HTTP " + status : "The server did not answer."));
      this.status = status;
      this.problem = problem || {};
    }
  }

  async function api(method, path, { body, headers = {}, signal } = {}) {
    const init = { method, headers: { Accept: "application/json", ...headers }, signal, cache: "no-store" };
    if (state.token) init.headers.Authorization = "Bearer " + state.token;
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      if (!init.headers["Content-Type"]) init.headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, null);
    }
    const type = response.headers.get("Content-Type") || "";
    let data = null;
    if (response.status !== 204 && type.includes("json")) {
      try {
        data = await response.json();
      } catch (_) {
        data = null;
      }
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return { status: response.status, headers: response.headers, data };
  }

  // What a status means, in words (the problem's detail follows it).
  function explain(error, action) {
    switch (error.status) {
      case 0:
        return "The server did not answer. Is it running, and is this the right address?";
      case 401:
        return "The server did not accept the token (401). Check it in the Token section, or ask for a new one.";
      case 403:
        return "This token may only read (403): it cannot " + (action || "change users") + ".";
      case 404:
        return "That user does not exist (any more) (404): someone may have deleted it.";
      case 409:
        return "Another user already has this value (409): pick a different one.";
      case 412:
        return "Someone changed this user after you opened it (412). The form now shows the current version: make your change again.";
      case 422:
        return "Some fields are not valid (422): see the messages under them.";
      case 429:
        return "Too many requests or failed tokens (429): wait a moment, then try again.";
      case 503:
        return "The server is busy or not ready (503): try again shortly.";
      default:
        return error.status >= 500 ? "The server failed (" + error.status + "): try again, or tell whoever runs it." : "";
    }
  }

  function describe(error, action) {
    const words = explain(error, action);
    const detail = error.problem.detail || "";
    const id = error.problem.request_id ? " (request " + error.problem.request_id + ")" : "";
    return [words, detail].filter(Boolean).join(" ") + id;
  }

  // ---- small DOM helpers ------------------------------------------------------

  function setStatus(node, text, kind) {
    node.textContent = text || "";
    node.classList.toggle("error", kind === "error");
    node.classList.toggle("ok", kind === "ok");
  }

  function make(tag, props = {}, children = []) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function formatTime(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return iso || "";
    const pad = (n) => String(n).padStart(2, "0");
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes());
  }

  // ---- token ------------------------------------------------------------------

  function loadToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (_) {
      return null;
    }
  }

  function saveToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      // Storage refused (private mode, quota): the token lives until the page goes.
    }
  }

  function showTokenError(message) {
    el.tokenError.textContent = message || "";
    el.tokenError.hidden = !message;
    if (message) el.token.setAttribute("aria-invalid", "true");
    else el.token.removeAttribute("aria-invalid");
  }

  function useToken(event) {
    event.preventDefault();
    const token = el.token.value.trim();
    if (token.length < MIN_TOKEN_LENGTH) {
      showTokenError("A token has at least " + MIN_TOKEN_LENGTH + " characters.");
      el.token.focus();
      return;
    }
    showTokenError("");
    state.token = token;
    saveToken(token);
    setStatus(el.tokenStatus, "Token kept for this tab.", "ok");
    start();
  }

  function forgetToken() {
    state.token = null;
    saveToken(null);
    el.token.value = "";
    showTokenError("");
    stopFeed();
    if (state.loading) state.loading.abort();
    state.rows = [];
    state.nextUrl = null;
    state.pageUrl = null;
    state.newSince.clear();
    cancelEdit();
    render();
    renderNewSince();
    setStatus(el.tokenStatus, "Token forgotten: this tab no longer has it.", "ok");
    setStatus(el.listStatus, "Enter a token to list users.");
    el.token.focus();
  }

  // ---- the list ---------------------------------------------------------------

  function listUrl() {
    const params = new URLSearchParams({ limit: String(state.limit) });
    if (state.q) params.set("q", state.q);
    return "/users?" + params.toString();
  }

  function nextLink(header) {
    if (!header) return null;
    for (const part of header.split(",")) {
      const match = /<([^>]*)>\s*;(.*)/.exec(part.trim());
      if (match && /\brel\s*=\s*"?next"?/i.test(match[2])) return match[1];
    }
    return null;
  }

  async function loadList(url, { quiet = false, focus = false } = {}) {
    if (!state.token) {
      setStatus(el.listStatus, "Enter a token to list users.");
      return;
    }
    if (state.loading) state.loading.abort();
    const controller = new AbortController();
    state.loading = controller;
    state.loadingUrl = url;
    if (!quiet) setStatus(el.listStatus, "Loading…");
    try {
      const { headers, data } = await api("GET", url, { signal: controller.signal });
      if (state.loading !== controller) return;
      state.pageUrl = url;
      state.rows = Array.isArray(data) ? data : [];
      state.nextUrl = nextLink(headers.get("Link"));
      state.confirming = null;
      for (const user of state.rows) state.newSince.delete(user.id);
      render();
      renderNewSince();
      setStatus(el.listStatus, "");
      if (focus) el.usersHeading.focus();
    } catch (error) {
      if (error.name === "AbortError") return;
      if (state.loading !== controller) return;
      setStatus(el.listStatus, describe(error, "list users"), "error");
      if (error.status === 401) showTokenError("The server did not accept this token.");
    } finally {
      if (state.loading === controller) {
        state.loading = null;
        state.loadingUrl = null;
        const queued = state.queued;
        state.queued = [];
        for (const event of queued) applyEvent(event);
      }
    }
  }

  function firstPage(options) {
    return loadList(listUrl(), options);
  }

  function render() {
    const fragment = document.createDocumentFragment();
    for (const user of state.rows) fragment.append(renderRow(user));
    el.tbody.replaceChildren(fragment);
    renderCount();
  }

  // "N users on this page": kept current as live changes add and remove rows.
  function renderCount() {
    el.nextPage.disabled = !state.nextUrl;
    const count = state.rows.length;
    if (!state.token || !state.pageUrl) {
      el.listCount.textContent = "";
    } else if (count === 0) {
      el.listCount.textContent = state.q ? "No users match “" + state.q + "”." :
        state.nextUrl ? "No users on this page." : "No users on this page; new ones appear here as they are created.";
    } else {
      el.listCount.textContent = count + (count === 1 ? " user" : " users") + " on this page" +
        (state.q ? " matching “" + state.q + "”" : "") + (state.nextUrl ? "; more on the next page." : ".");
    }
  }

  function renderRow(user) {
    const row = make("tr", { dataset: { id: user.id, testid: "user-row" } });
    const labels = { name: "Name", username: "Username", email: "Email" };
    for (const field of USER_FIELDS) {
      row.append(make("td", { "data-label": labels[field], dataset: { field } }, [user[field] || ""]));
    }
    const time = make("time", { datetime: user.created_at || "", text: formatTime(user.created_at) });
    row.append(make("td", { "data-label": "Created", dataset: { field: "created_at" } }, [time]));
    const actions = make("td", { class: "row-actions", dataset: { field: "actions" } });
    if (state.confirming === user.id) {
      actions.append(
        make("button", { type: "button", class: "danger", "data-action": "really-delete",
          "data-testid": "really-delete", "aria-label": "Really delete " + user.username + "?", text: "Really delete?" }),
        make("button", { type: "button", class: "secondary", "data-action": "cancel-delete",
          "data-testid": "cancel-delete", "aria-label": "Keep " + user.username, text: "Keep" }));
    } else {
      actions.append(
        make("button", { type: "button", class: "secondary", "data-action": "edit", "data-testid": "edit",
          "aria-label": "Edit " + user.username, text: "Edit" }),
        make("button", { type: "button", class: "secondary", "data-action": "delete", "data-testid": "delete",
          "aria-label": "Delete " + user.username, text: "Delete" }));
    }
    row.append(actions);
    return row;
  }

  function rowFor(id) {
    return el.tbody.querySelector('tr[data-id="' + CSS.escape(id) + '"]');
  }

  function replaceRow(user, focusAction) {
    const old = rowFor(user.id);
    if (!old) return;
    const row = renderRow(user);
    old.replaceWith(row);
    if (focusAction) {
      const button = row.querySelector('[data-action="' + focusAction + '"]');
      if (button) button.focus();
    }
  }

  function renderNewSince() {
    const items = [];
    for (const user of state.newSince.values()) {
      items.push(make("li", { dataset: { id: user.id, testid: "new-user" } },
        [make("strong", { text: user.name }), " (" + user.username + ", " + user.email + ")"]));
    }
    el.newSinceList.replaceChildren(...items);
    el.newSince.hidden = items.length === 0;
  }

  // Whether a user belongs to the search shown: q is a case-insensitive prefix of
  // its name, username or email (as the server searches).
  function matchesSearch(user) {
    if (!state.q) return true;
    const q = state.q.toLowerCase();
    return USER_FIELDS.some((field) => String(user[field] || "").toLowerCase().startsWith(q));
  }

  // ---- applying changes (from the feed, and from this page's own writes) --------

  function applyEvent(event) {
    if (state.loading) {
      state.queued.push(event);
      return;
    }
    const index = state.rows.findIndex((user) => user.id === event.id);
    if (event.type === "user.deleted") {
      if (index >= 0) {
        const row = rowFor(event.id);
        const hadFocus = row && row.contains(document.activeElement);
        state.rows.splice(index, 1);
        if (state.confirming === event.id) state.confirming = null;
        if (row) row.remove();
        renderCount();
        if (hadFocus) el.usersHeading.focus();
      }
      if (state.newSince.delete(event.id)) renderNewSince();
      if (state.editing && state.editing.id === event.id) {
        cancelEdit();
        setStatus(el.formStatus, "The user you were editing was deleted (elsewhere).", "error");
      }
      return;
    }
    const user = event.user;
    if (!user || typeof user !== "object") return;
    if (index >= 0) {
      if (matchesSearch(user)) {
        state.rows[index] = user;
        const row = rowFor(user.id);
        const focused = row && row.contains(document.activeElement) ? document.activeElement.dataset.action : null;
        replaceRow(user, focused);
        const fresh = rowFor(user.id);
        if (fresh && event.type === "user.updated") flash(fresh);
      } else {
        // No longer matches the search shown: it leaves the page.
        state.rows.splice(index, 1);
        const row = rowFor(user.id);
        if (row) row.remove();
        renderCount();
      }
    } else if (state.newSince.has(user.id)) {
      state.newSince.set(user.id, user);
      renderNewSince();
    } else if (event.type === "user.created") {
      placeCreated(user);
    }
    if (state.editing && state.editing.id === user.id && event.type === "user.updated" && !event.own) {
      setStatus(el.formStatus, "This user was changed elsewhere while you edit it: saving will be refused (412) " +
        "and show the current version.", "error");
    }
  }

  // A new user comes last in creation order: it joins the page when the page is
  // the last one, has room and matches the search; else it is listed as new.
  function placeCreated(user) {
    if (!state.pageUrl) return;
    const lastPage = !state.nextUrl;
    if (lastPage && matchesSearch(user) && state.rows.length < state.limit) {
      state.rows.push(user);
      el.tbody.append(renderRow(user));
      renderCount();
      flash(rowFor(user.id));
      return;
    }
    if (lastPage && matchesSearch(user) && state.rows.length > 0) {
      // The page is full: the new user starts the next page.
      const params = new URLSearchParams({ limit: String(state.limit), after: state.rows[state.rows.length - 1].id });
      if (state.q) params.set("q", state.q);
      state.nextUrl = "/users?" + params.toString();
      renderCount();
    }
    state.newSince.set(user.id, user);
    while (state.newSince.size > NEW_SINCE_MAX) state.newSince.delete(state.newSince.keys().next().value);
    renderNewSince();
  }

  function flash(row) {
    if (!row) return;
    row.classList.add("changed");
    setTimeout(() => row.classList.remove("changed"), 2000);
  }

  // ---- create / edit form -------------------------------------------------------

  function clearFieldErrors() {
    for (const field of USER_FIELDS) {
      const node = fieldError(field);
      node.textContent = "";
      node.hidden = true;
      input(field).removeAttribute("aria-invalid");
    }
  }

  // errors[].field -> the message under that input; the rest (body, unknown
  // members) joins the form-level message. Returns the messages not placed.
  function showFieldErrors(errors) {
    const rest = [];
    let first = null;
    for (const item of errors || []) {
      if (!item || typeof item !== "object") continue;
      if (USER_FIELDS.includes(item.field)) {
        const node = fieldError(item.field);
        const label = document.querySelector('label[for="user-' + item.field + '"]').textContent;
        node.textContent = node.hidden ? label + " " + item.message : node.textContent + "; " + item.message;
        node.hidden = false;
        input(item.field).setAttribute("aria-invalid", "true");
        if (!first) first = input(item.field);
      } else {
        rest.push((item.field ? item.field + " " : "") + item.message);
      }
    }
    return { first, rest };
  }

  function formValues() {
    const values = {};
    for (const field of USER_FIELDS) values[field] = input(field).value;
    return values;
  }

  function fillForm(user) {
    for (const field of USER_FIELDS) input(field).value = user[field] || "";
  }

  function setMode(mode, user) {
    el.userForm.dataset.mode = mode;
    if (mode === "edit") {
      el.formHeading.textContent = "Edit " + user.username;
      el.userSubmit.textContent = "Save changes";
      el.userCancel.hidden = false;
    } else {
      el.formHeading.textContent = "Create a user";
      el.userSubmit.textContent = "Create user";
      el.userCancel.hidden = true;
    }
  }

  function cancelEdit() {
    const was = state.editing;
    state.editing = null;
    clearFieldErrors();
    el.userForm.reset();
    setMode("create");
    return was;
  }

  async function startEdit(id) {
    setStatus(el.formStatus, "Loading the user…");
    clearFieldErrors();
    try {
      const { headers, data } = await api("GET", "/users/" + encodeURIComponent(id));
      state.editing = { id, etag: headers.get("ETag"), original: data };
      fillForm(data);
      setMode("edit", data);
      setStatus(el.formStatus, "Editing " + data.username + ": change the fields, then save.");
      input("name").focus();
    } catch (error) {
      setStatus(el.formStatus, describe(error, "read users"), "error");
    }
  }

  async function submitUser(event) {
    event.preventDefault();
    if (!state.token) {
      setStatus(el.formStatus, "Enter a token first (Token section).", "error");
      el.token.focus();
      return;
    }
    clearFieldErrors();
    el.userSubmit.disabled = true;
    const editing = state.editing;
    setStatus(el.formStatus, editing ? "Saving…" : "Creating…");
    try {
      if (editing) {
        // A merge patch of the fields changed; If-Match makes a change made meanwhile a 412.
        const values = formValues();
        const patch = {};
        for (const field of USER_FIELDS) {
          if (values[field] !== (editing.original[field] || "")) patch[field] = values[field];
        }
        if (Object.keys(patch).length === 0) {
          setStatus(el.formStatus, "Nothing changed: edit a field, or cancel editing.");
          return;
        }
        const headers = { "Content-Type": "application/merge-patch+json" };
        if (editing.etag) headers["If-Match"] = editing.etag;
        const { data } = await api("PATCH", "/users/" + encodeURIComponent(editing.id), { body: patch, headers });
        cancelEdit();
        applyEvent({ type: "user.updated", id: data.id, user: data, own: true });
        setStatus(el.formStatus, "Saved " + data.username + ".", "ok");
        const row = rowFor(data.id);
        const button = row && row.querySelector('[data-action="edit"]');
        if (button) button.focus();
        else input("name").focus();
      } else {
        const { data } = await api("POST", "/users", { body: formValues() });
        el.userForm.reset();
        applyEvent({ type: "user.created", id: data.id, user: data, own: true });
        setStatus(el.formStatus, "Created " + data.username + ".", "ok");
        input("name").focus();
      }
    } catch (error) {
      if (error.name === "AbortError") return;
      const { first, rest } = showFieldErrors(error.problem.errors);
      const message = [describe(error, editing ? "change users" : "create users"), ...rest].join(" ");
      setStatus(el.formStatus, message, "error");
      if (error.status === 412 && editing) {
        // Show the current version; the next save sends its ETag.
        try {
          const { headers, data } = await api("GET", "/users/" + encodeURIComponent(editing.id));
          state.editing = { id: editing.id, etag: headers.get("ETag"), original: data };
          fillForm(data);
          applyEvent({ type: "user.updated", id: data.id, user: data, own: true });
        } catch (_) {
          // The message above stands.
        }
      }
      if (error.status === 404 && editing) cancelEdit();
      if (error.status === 401) showTokenError("The server did not accept this token.");
      (first || el.userSubmit).focus();
    } finally {
      el.userSubmit.disabled = false;
    }
  }

  // ---- delete with an inline confirm step ----------------------------------------

  function askDelete(id) {
    const previous = state.confirming;
    state.confirming = id;
    const user = state.rows.find((u) => u.id === id);
    if (previous && previous !== id) {
      const other = state.rows.find((u) => u.id === previous);
      if (other) replaceRow(other);
    }
    if (user) replaceRow(user, "really-delete");
  }

  function keepUser(id) {
    state.confirming = null;
    const user = state.rows.find((u) => u.id === id);
    if (user) replaceRow(user, "delete");
  }

  async function reallyDelete(id) {
    const user = state.rows.find((u) => u.id === id);
    const who = user ? user.username : id;
    setStatus(el.listStatus, "Deleting " + who + "…");
    try {
      // The ETag of the version shown now: a change in between answers 412, not a silent delete.
      const current = await api("GET", "/users/" + encodeURIComponent(id));
      const headers = {};
      const etag = current.headers.get("ETag");
      if (etag) headers["If-Match"] = etag;
      await api("DELETE", "/users/" + encodeURIComponent(id), { headers });
      state.confirming = null;
      applyEvent({ type: "user.deleted", id, user: null, own: true });
      setStatus(el.listStatus, "Deleted " + who + ".", "ok");
      el.usersHeading.focus();
    } catch (error) {
      setStatus(el.listStatus, describe(error, "delete users"), "error");
      if (error.status === 404) applyEvent({ type: "user.deleted", id, user: null, own: true });
      else keepUser(id);
    }
  }

  function onTableClick(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const row = button.closest("tr[data-id]");
    if (!row) return;
    const id = row.dataset.id;
    switch (button.dataset.action) {
      case "edit":
        startEdit(id);
        break;
      case "delete":
        askDelete(id);
        break;
      case "really-delete":
        reallyDelete(id);
        break;
      case "cancel-delete":
        keepUser(id);
        break;
    }
  }

  function onTableKey(event) {
    if (event.key === "Escape" && state.confirming) {
      event.preventDefault();
      keepUser(state.confirming);
    }
  }

  // ---- the live feed ----------------------------------------------------------------

  const feed = {
    ws: null,
    wanted: false, // false once stopped on purpose (no token, token refused)
    lastSeq: null, // the last event applied; resume after it
    attempt: 0,
    timer: null,
  };

  function setLive(kind, text) {
    el.live.dataset.state = kind;
    el.liveText.textContent = text || { live: "live", reconnecting: "reconnecting…", offline: "offline" }[kind];
  }

  function startFeed() {
    feed.wanted = true;
    feed.attempt = 0;
    connectFeed();
  }

  function stopFeed(text) {
    feed.wanted = false;
    clearTimeout(feed.timer);
    const ws = feed.ws;
    feed.ws = null;
    if (ws) ws.close(1000, "console closed the feed");
    setLive("offline", text);
  }

  function connectFeed() {
    clearTimeout(feed.timer);
    if (!feed.wanted || !state.token) {
      setLive("offline");
      return;
    }
    if (feed.ws) {
      const old = feed.ws;
      feed.ws = null;
      old.close(1000, "reconnecting");
    }
    const since = feed.lastSeq;
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/users/watch" +
      (since !== null ? "?since=" + since : "");
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (_) {
      scheduleReconnect();
      return;
    }
    feed.ws = ws;
    if (feed.attempt > 0 || el.live.dataset.state === "live") setLive("reconnecting");
    else setLive("reconnecting", "connecting…");
    const token = state.token;
    ws.addEventListener("open", () => {
      if (feed.ws !== ws) return;
      ws.send(JSON.stringify(since !== null ? { token, since } : { token }));
    });
    ws.addEventListener("message", (message) => {
      if (feed.ws !== ws) return;
      let data;
      try {
        data = JSON.parse(message.data);
      } catch (_) {
        return;
      }
      if (!data || typeof data !== "object") return;
      if (data.type === "ready") {
        feed.attempt = 0;
        setLive("live");
        refreshInstance();
        if (since === null) {
          // Following from the newest event on: reload the page so nothing
          // between the list and the feed is missed (events replay idempotently).
          if (typeof data.latest === "number") feed.lastSeq = data.latest;
          const url = state.loadingUrl || state.pageUrl;
          if (url) loadList(url, { quiet: true });
        }
        return;
      }
      if (typeof data.seq !== "number") return;
      if (feed.lastSeq !== null && data.seq <= feed.lastSeq) return;
      feed.lastSeq = data.seq;
      applyEvent(data);
    });
    ws.addEventListener("close", (event) => {
      if (feed.ws !== ws) return;
      feed.ws = null;
      if (!feed.wanted) {
        setLive("offline");
        return;
      }
      if (event.code === 1008) {
        if (/re-?list|ahead/i.test(event.reason || "")) {
          // The feed no longer has our position: list again, follow from now on.
          feed.lastSeq = null;
          feed.attempt = 0;
          feed.timer = setTimeout(connectFeed, 0);
          setLive("reconnecting");
          return;
        }
        feed.wanted = false;
        setLive("offline", "offline: the feed refused the token");
        showTokenError("The live feed refused this token" + (event.reason ? " (" + event.reason + ")" : "") + ".");
        return;
      }
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    clearTimeout(feed.timer);
    if (!feed.wanted) return;
    const delay = Math.min(BACKOFF_START_MS * 2 ** feed.attempt, BACKOFF_MAX_MS);
    feed.attempt += 1;
    setLive("reconnecting");
    feed.timer = setTimeout(connectFeed, delay);
  }

  // ---- which instance answered --------------------------------------------------------

  async function refreshInstance() {
    try {
      const { data } = await api("GET", "/");
      if (!data || typeof data !== "object") return;
      const parts = ["instance: " + (data.instance || "unknown")];
      if (data.version && data.version !== "unknown") parts.push("version " + data.version);
      el.instance.textContent = parts.join(" · ");
    } catch (_) {
      el.instance.textContent = "instance: not answering";
    }
  }

  // ---- start ------------------------------------------------------------------------

  function start() {
    state.limit = Number(el.pageSize.value) || 20;
    state.q = el.search.value.trim();
    refreshInstance();
    firstPage();
    startFeed();
  }

  let searchTimer = null;
  function onSearchInput() {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      const q = el.search.value.trim();
      if (q === state.q) return;
      state.q = q;
      firstPage();
    }, SEARCH_DELAY_MS);
  }

  function onSearchSubmit(event) {
    event.preventDefault();
    clearTimeout(searchTimer);
    state.q = el.search.value.trim();
    firstPage();
  }

  el.tokenForm.addEventListener("submit", useToken);
  el.tokenForget.addEventListener("click", forgetToken);
  el.userForm.addEventListener("submit", submitUser);
  el.userCancel.addEventListener("click", () => {
    const was = cancelEdit();
    setStatus(el.formStatus, "Editing cancelled.");
    const row = was && rowFor(was.id);
    const button = row && row.querySelector('[data-action="edit"]');
    if (button) button.focus();
    else input("name").focus();
  });
  el.userForm.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.editing) el.userCancel.click();
  });
  el.searchForm.addEventListener("submit", onSearchSubmit);
  el.search.addEventListener("input", onSearchInput);
  el.pageSize.addEventListener("change", () => {
    state.limit = Number(el.pageSize.value) || 20;
    firstPage();
  });
  el.firstPage.addEventListener("click", () => firstPage({ focus: true }));
  el.nextPage.addEventListener("click", () => {
    if (state.nextUrl) loadList(state.nextUrl, { focus: true });
  });
  el.tbody.addEventListener("click", onTableClick);
  el.tbody.addEventListener("keydown", onTableKey);
  window.addEventListener("online", () => {
    if (feed.wanted && !feed.ws) {
      feed.attempt = 0;
      connectFeed();
    }
  });
  window.addEventListener("pagehide", () => {
    if (feed.ws) feed.ws.close(1000, "page closed");
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted && state.token) startFeed();
  });

  state.token = loadToken();
  render();
  if (state.token) {
    el.token.value = state.token;
    setStatus(el.tokenStatus, "Using the token kept for this tab.");
    start();
  } else {
    refreshInstance();
    setLive("offline");
    setStatus(el.listStatus, "Enter a token to list users.");
  }
})();
