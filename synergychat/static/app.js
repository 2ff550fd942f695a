// SynergyChat's page: loads the latest messages, follows new ones over Server-Sent
// Events, and posts what the user writes. Messages are only ever rendered as text.
'use strict';

(() => {
  const PAGE_SIZE = 100;
  const MAX_TEXT = 4000;
  const BOT_NAME = 'crawler-bot';
  const USERNAME_KEY = 'synergychat.username';
  // Closer than this to the bottom, the log follows new messages; further up, the user is reading.
  const STICKY_PX = 48;
  // Consecutive messages of one author within this window share one header.
  const GROUP_MS = 5 * 60 * 1000;
  // An api without message ids (the original Go one) has no stream: poll it as the original page did.
  const LEGACY_POLL_MS = 5000;
  // While the stream is not open (api restarting, a proxy buffering the stream so it never
  // opens, or no stream at all), fetch the latest page this often so the chat keeps moving.
  const FALLBACK_POLL_MS = 5000;
  // What a stream URL answers when the api has no stream (the original's router, or a proxy
  // that forwards /messages only): stop reopening it and poll.
  const NO_STREAM_STATUSES = [404, 405];
  // Said to screen readers once typing pauses, not on every key (as GOV.UK's character count).
  const COUNTER_SPEAK_DELAY_MS = 1000;
  // Announcements already spoken are removed past this many; removals are never read out.
  const ANNOUNCER_KEEP = 5;
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 30000;
  const AVATAR_COLORS = 8;
  // Wide enough for the help panel to sit beside the chat: open it there, fold it on phones.
  // In em like the stylesheet's breakpoints, so a larger default text size counts as narrower.
  const WIDE_SCREEN = '(min-width: 56.25em)';

  const byId = (id) => document.getElementById(id);
  const ui = {
    status: byId('status'),
    statusText: byId('status-text'),
    banner: byId('banner'),
    scroller: byId('scroller'),
    older: byId('load-older'),
    empty: byId('empty'),
    list: byId('messages'),
    jump: byId('jump'),
    announcer: byId('announcer'),
    form: byId('composer'),
    formError: byId('form-error'),
    username: byId('username'),
    message: byId('message'),
    send: byId('send'),
    counter: byId('counter'),
    counterStatus: byId('counter-status'),
    help: byId('help'),
  };

  const state = {
    api: null, // {messages: URL, stream: URL} once API_URL resolved
    messages: new Map(), // id -> {message, node}
    ids: [], // ascending
    hasOlder: false,
    legacy: false,
    legacyShown: [], // the original api's messages on screen, in order
    noStream: false, // the stream URL answered 404: poll instead
    source: null,
    fallbackTimer: 0,
    counterTimer: 0,
    retryMs: RETRY_MIN_MS,
    timer: 0,
    fallbackPolling: false,
    loadingOlder: false,
    sending: false,
    history: null, // the api's history id, from the stream's hello event
  };

  // ---- configuration -------------------------------------------------------

  class ConfigError extends Error {}

  function readApiUrl() {
    const node = byId('synergychat-config');
    let config = null;
    try {
      config = JSON.parse(node ? node.textContent : '');
    } catch {
      // The placeholder was not replaced: the file was opened directly or served by something else.
    }
    if (!config || typeof config !== 'object') {
      throw new ConfigError(
        'This page is missing its configuration (it was not served by the SynergyChat web role), ' +
          'so it cannot reach the chat API.',
      );
    }
    const apiUrl = typeof config.apiUrl === 'string' ? config.apiUrl.trim() : '';
    if (!apiUrl) {
      throw new ConfigError(
        'The chat API is not configured: set API_URL on the web role ' +
          '(for example /api or http://localhost:8081), then reload this page.',
      );
    }
    return apiUrl;
  }

  function resolveApi(apiUrl) {
    // One trailing slash whatever API_URL ends with, so "/api" and "/api/" mean the same.
    let base;
    try {
      base = new URL(apiUrl.replace(/\/+$/, '') + '/', window.location.href);
    } catch {
      throw new ConfigError(`API_URL ${JSON.stringify(apiUrl)} is not a valid URL.`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new ConfigError(`API_URL ${JSON.stringify(apiUrl)} must be an http:// or https:// URL or a path.`);
    }
    return { messages: new URL('messages', base), stream: new URL('messages/stream', base) };
  }

  // Said along with network failures, because it is the usual cause nobody thinks of.
  function mixedContentHint() {
    if (window.location.protocol === 'https:' && state.api && state.api.messages.protocol === 'http:') {
      return ' This page is served over https:// but API_URL is http://, which browsers block.';
    }
    return '';
  }

  // ---- talking to the api ----------------------------------------------------

  class ApiError extends Error {}

  async function requestJson(url, options = {}) {
    let response;
    try {
      response = await fetch(url, { cache: 'no-store', ...options });
    } catch {
      throw new ApiError('Could not reach the chat server.' + mixedContentHint());
    }
    let body;
    try {
      const text = await response.text();
      body = text ? JSON.parse(text) : null;
    } catch {
      body = undefined; // not JSON: a proxy's error page, or API_URL pointing at the wrong thing
    }
    if (!response.ok) {
      if (body && typeof body.error === 'string' && body.error) throw new ApiError(body.error);
      throw new ApiError(`The chat server answered ${response.status} ${response.statusText}`.trim() + '.');
    }
    if (!Array.isArray(body)) {
      throw new ApiError('The chat server did not answer with a list of messages. Does API_URL point at the api?');
    }
    return body;
  }

  function messagesUrl(params) {
    const url = new URL(state.api.messages);
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, String(value));
    return url;
  }

  function hasId(message) {
    return message !== null && typeof message === 'object' && Number.isSafeInteger(message.id);
  }

  function isMessage(message) {
    return (
      message !== null &&
      typeof message === 'object' &&
      typeof message.AuthorUsername === 'string' &&
      typeof message.Text === 'string'
    );
  }

  // ---- status, banner, errors -------------------------------------------------

  const STATUS_TEXT = {
    connecting: 'Connecting…',
    live: 'Live',
    reconnecting: 'Reconnecting…',
    offline: 'Offline',
    polling: 'Refreshing every 5 s',
    unconfigured: 'Not configured',
  };

  // The status is a live region: only a change of state is written, so it is said once.
  function setStatus(name) {
    if (ui.statusText.textContent === STATUS_TEXT[name] && ui.status.classList.contains(`status-${name}`)) return;
    ui.status.className = `status status-${name}`;
    ui.statusText.textContent = STATUS_TEXT[name];
  }

  function showBanner(text) {
    ui.banner.textContent = text;
    ui.banner.hidden = false;
  }

  function hideBanner() {
    ui.banner.hidden = true;
    ui.banner.textContent = '';
  }

  // `field`: the input the error is about, marked invalid and described by the error (GOV.UK's pattern).
  function showFormError(text, field = null) {
    clearFormError();
    ui.formError.textContent = text;
    ui.formError.hidden = false;
    if (field) {
      field.setAttribute('aria-invalid', 'true');
      const described = field.getAttribute('aria-describedby');
      field.setAttribute('aria-describedby', described ? `form-error ${described}` : 'form-error');
    }
  }

  function clearFormError() {
    ui.formError.hidden = true;
    ui.formError.textContent = '';
    for (const field of [ui.username, ui.message]) {
      field.removeAttribute('aria-invalid');
      const described = (field.getAttribute('aria-describedby') || '').replace(/\bform-error\b\s*/, '').trim();
      if (described) field.setAttribute('aria-describedby', described);
      else field.removeAttribute('aria-describedby');
    }
  }

  // Our api names the field first in its 4xx errors ("Text must be at most ...").
  function fieldOfApiError(text) {
    if (/^AuthorUsername\b/.test(text)) return ui.username;
    if (/^Text\b/.test(text)) return ui.message;
    return null;
  }

  function nextRetryDelay() {
    const delay = state.retryMs;
    state.retryMs = Math.min(state.retryMs * 2, RETRY_MAX_MS);
    return delay;
  }

  function schedule(callback, delay) {
    window.clearTimeout(state.timer);
    state.timer = window.setTimeout(callback, delay);
  }

  // ---- rendering -----------------------------------------------------------------

  const timeOnly = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const dayAndTime = new Intl.DateTimeFormat(undefined, {
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
  });
  const fullDate = new Intl.DateTimeFormat(undefined, {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
  });
  const tooltipDate = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

  function parseDate(value) {
    if (typeof value !== 'string') return null;
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? null : date;
  }

  function formatShort(date) {
    const now = new Date();
    if (date.toDateString() === now.toDateString()) return timeOnly.format(date);
    if (date.getFullYear() === now.getFullYear()) return dayAndTime.format(date);
    return fullDate.format(date);
  }

  function initial(name) {
    const first = Array.from(name.trim())[0];
    return first ? first.toUpperCase() : '?';
  }

  function colorClass(name) {
    let hash = 0;
    for (const char of name) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
    return `avatar-${hash % AVATAR_COLORS}`;
  }

  function currentUsername() {
    return ui.username.value.trim();
  }

  function renderMessage(message) {
    const author = message.AuthorUsername;
    const isBot = author === BOT_NAME;
    const item = document.createElement('li');
    item.className = isBot ? 'msg msg-bot' : 'msg';
    if (!isBot && author === currentUsername()) item.classList.add('msg-own');

    const avatar = document.createElement('span');
    avatar.className = `avatar ${isBot ? 'avatar-bot' : colorClass(author)}`;
    avatar.setAttribute('aria-hidden', 'true');
    avatar.textContent = initial(author);

    const body = document.createElement('div');
    body.className = 'msg-body';

    const head = document.createElement('p');
    head.className = 'msg-head';
    const name = document.createElement('span');
    name.className = 'msg-author';
    name.textContent = author;
    head.append(name);
    if (isBot) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = 'bot';
      head.append(' ', badge);
    }
    const date = parseDate(message.created_at);
    if (date) {
      const time = document.createElement('time');
      time.className = 'msg-time';
      time.dateTime = date.toISOString();
      time.title = tooltipDate.format(date);
      time.textContent = formatShort(date);
      head.append(' ', time);
    }

    const text = document.createElement('p');
    text.className = 'msg-text';
    text.textContent = message.Text;

    body.append(head, text);
    item.append(avatar, body);
    return item;
  }

  // What a screen reader says for a new message: its author (the bot said to be one), then its text.
  function spokenMessage(message) {
    const author = message.AuthorUsername === BOT_NAME ? `${BOT_NAME} (bot)` : message.AuthorUsername;
    return `${author}: ${message.Text}`;
  }

  // Each new message once, politely, through one live region; history and older pages never.
  function announce(messages) {
    for (const message of messages) {
      const line = document.createElement('p');
      line.textContent = spokenMessage(message);
      ui.announcer.append(line);
    }
    while (ui.announcer.childElementCount > ANNOUNCER_KEEP) ui.announcer.firstElementChild.remove();
  }

  // Mark a message that continues its predecessor's run (same author, shortly after).
  function regroup(index) {
    if (index <= 0 || index >= state.ids.length) return;
    const current = state.messages.get(state.ids[index]);
    const previous = state.messages.get(state.ids[index - 1]);
    const a = parseDate(previous.message.created_at);
    const b = parseDate(current.message.created_at);
    const continued =
      previous.message.AuthorUsername === current.message.AuthorUsername &&
      a !== null &&
      b !== null &&
      b - a >= 0 &&
      b - a < GROUP_MS;
    current.node.classList.toggle('msg-continued', continued);
  }

  function insertionIndex(id) {
    let low = 0;
    let high = state.ids.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (state.ids[mid] < id) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  function isNearBottom() {
    const s = ui.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight <= STICKY_PX;
  }

  function scrollToBottom() {
    ui.scroller.scrollTop = ui.scroller.scrollHeight;
    ui.jump.hidden = true;
  }

  function updateEmpty() {
    ui.empty.hidden = state.ids.length > 0 || ui.list.childElementCount > 0;
  }

  // Add messages in id order, skipping those already shown (the POST answer and the
  // stream both deliver one's own message). `mode`: 'new', 'own' (just sent) or 'older'.
  // `bulk`: a whole page at once (the history, an older page), which is not announced.
  function addMessages(list, mode = 'new', bulk = false) {
    const follow = mode === 'own' || isNearBottom();
    const heightBefore = ui.scroller.scrollHeight;
    const fresh = [];
    let addedAtEnd = false;
    for (const message of list) {
      if (!hasId(message) || !isMessage(message) || state.messages.has(message.id)) continue;
      const index = insertionIndex(message.id);
      const node = renderMessage(message);
      const next = index < state.ids.length ? state.messages.get(state.ids[index]).node : null;
      ui.list.insertBefore(node, next);
      state.ids.splice(index, 0, message.id);
      state.messages.set(message.id, { message, node });
      regroup(index);
      regroup(index + 1);
      fresh.push(message);
      if (index === state.ids.length - 1) addedAtEnd = true;
    }
    updateEmpty();
    if (!bulk && mode !== 'older') announce(fresh);
    if (mode === 'older') {
      // Keep the messages the user is looking at in place.
      ui.scroller.scrollTop += ui.scroller.scrollHeight - heightBefore;
    } else if (follow) {
      scrollToBottom();
    } else if (addedAtEnd) {
      ui.jump.hidden = false;
    }
    return fresh.length;
  }

  function lastId() {
    return state.ids.length ? state.ids[state.ids.length - 1] : 0;
  }

  function updateOlderButton() {
    ui.older.hidden = state.legacy || !state.hasOlder;
  }

  // ---- loading, live updates ---------------------------------------------------------

  async function loadLatest() {
    try {
      const page = await requestJson(messagesUrl({ limit: PAGE_SIZE }));
      hideBanner();
      state.retryMs = RETRY_MIN_MS;
      if (page.some((message) => !hasId(message))) {
        startLegacy(page);
        return;
      }
      addMessages(page, 'new', true);
      state.hasOlder = page.length >= PAGE_SIZE;
      updateOlderButton();
      // An empty answer does not tell our api from the original: the stream URL does (404 there).
      openStream();
      state.fallbackTimer = window.setInterval(pollWhileStreamDown, FALLBACK_POLL_MS);
    } catch (error) {
      const delay = nextRetryDelay();
      setStatus('offline');
      showBanner(`Could not load messages: ${error.message} Retrying in ${Math.round(delay / 1000)} s…`);
      schedule(loadLatest, delay);
    }
  }

  function openStream() {
    if (state.source) state.source.close();
    state.source = null;
    if (state.legacy || state.noStream) return;
    const url = new URL(state.api.stream);
    url.searchParams.set('after', String(lastId()));
    const source = new EventSource(url);
    state.source = source;
    source.addEventListener('open', () => {
      state.retryMs = RETRY_MIN_MS;
      setStatus('live');
      hideBanner();
    });
    source.addEventListener('message', (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      addMessages([message]);
    });
    source.addEventListener('hello', (event) => {
      let history = null;
      try {
        history = JSON.parse(event.data).history;
      } catch {
        return;
      }
      const known = state.history;
      state.history = history;
      // Reconnected to another history (the api restarted on an empty or another database):
      // the ids we hold mean other messages there.
      if (known && history !== known) {
        source.close();
        state.source = null;
        resetHistory();
      }
    });
    source.addEventListener('reset', () => {
      // The api's history was replaced (restarted without a database file, or restored):
      // the messages shown are from another history. Close first, so EventSource does not
      // reconnect with an id the api never issued, then start over from the latest page.
      source.close();
      state.source = null;
      resetHistory();
    });
    source.addEventListener('error', () => {
      if (source !== state.source) return;
      if (source.readyState !== EventSource.CLOSED) {
        // EventSource retries by itself, sending Last-Event-ID; the server replays the gap.
        setStatus('reconnecting');
        return;
      }
      // The browser gave up on an error status, which EventSource does not show: ask for it.
      // 404 means there is no stream (the original api): poll. Anything else: reopen later
      // from the newest message we have.
      source.close();
      state.source = null;
      streamIsMissing().then((missing) => {
        if (state.legacy || state.source) return;
        if (missing) {
          useNoStream();
          return;
        }
        setStatus('reconnecting');
        schedule(openStream, nextRetryDelay());
      });
    });
  }

  async function streamIsMissing() {
    const controller = new AbortController();
    try {
      const response = await fetch(state.api.stream, { cache: 'no-store', signal: controller.signal });
      return NO_STREAM_STATUSES.includes(response.status);
    } catch {
      return false; // unreachable, or a 404 without CORS headers: not known to be missing
    } finally {
      // Only the status was wanted: a stream that does answer is not read.
      controller.abort();
    }
  }

  // No stream at this api: the fallback poll carries the chat (and finds id-less messages,
  // the original's, as soon as there are any).
  function useNoStream() {
    state.noStream = true;
    window.clearTimeout(state.timer);
    setStatus('polling');
    hideBanner();
    pollWhileStreamDown();
  }

  async function resetHistory() {
    if (state.legacy) return;
    state.messages.clear();
    state.ids = [];
    ui.list.replaceChildren();
    updateEmpty();
    try {
      const page = await requestJson(messagesUrl({ limit: PAGE_SIZE }));
      addMessages(page, 'new', true);
      state.hasOlder = page.length >= PAGE_SIZE;
      updateOlderButton();
    } catch {
      // The stream below and the fallback poll bring the messages once the api answers.
    }
    openStream();
  }

  async function pollWhileStreamDown() {
    const source = state.source;
    if (state.legacy || state.fallbackPolling || (source && source.readyState === EventSource.OPEN)) return;
    state.fallbackPolling = true;
    try {
      const page = await requestJson(messagesUrl({ limit: PAGE_SIZE }));
      if (state.legacy) return;
      if (page.some((message) => !hasId(message))) startLegacy(page, true);
      else addMessages(page);
      if (state.noStream) {
        hideBanner();
        setStatus('polling');
      }
    } catch (error) {
      // With a stream, its status already says the connection is down and its retries bring it
      // back; without one, this poll is the connection.
      if (state.noStream) {
        setStatus('offline');
        showBanner(`Could not refresh messages: ${error.message}`);
      }
    } finally {
      state.fallbackPolling = false;
    }
  }

  // The original api: messages have no id, and every answer is the whole history.
  // `speak`: found after load (an api empty then), so what it holds is news.
  function startLegacy(page, speak = false) {
    state.legacy = true;
    if (state.source) state.source.close();
    state.source = null;
    window.clearInterval(state.fallbackTimer);
    // What id-mode showed (nothing, usually) gives way to the original's whole history.
    state.messages.clear();
    state.ids = [];
    ui.list.replaceChildren();
    updateOlderButton();
    renderLegacy(page, speak);
    hideBanner();
    setStatus('polling');
    schedule(pollLegacy, LEGACY_POLL_MS);
  }

  function sameMessage(a, b) {
    return a.AuthorUsername === b.AuthorUsername && a.Text === b.Text;
  }

  // The original answers the whole history each time: what extends the shown one is new
  // (appended and announced); anything else is another history, shown afresh and silently.
  function renderLegacy(page, speak = true, own = false) {
    const messages = page.filter(isMessage);
    const shown = state.legacyShown;
    const continues = messages.length >= shown.length && shown.every((message, i) => sameMessage(message, messages[i]));
    if (continues && messages.length === shown.length) return;
    const follow = own || isNearBottom();
    if (continues) {
      const fresh = messages.slice(shown.length);
      ui.list.append(...fresh.map(renderMessage));
      if (speak) announce(fresh);
    } else {
      ui.list.replaceChildren(...messages.map(renderMessage));
    }
    state.legacyShown = messages;
    updateEmpty();
    if (follow) scrollToBottom();
    else if (continues) ui.jump.hidden = false;
  }

  async function pollLegacy() {
    try {
      renderLegacy(await requestJson(state.api.messages));
      hideBanner();
      setStatus('polling');
    } catch (error) {
      setStatus('offline');
      showBanner(`Could not refresh messages: ${error.message}`);
    }
    schedule(pollLegacy, LEGACY_POLL_MS);
  }

  async function loadOlder() {
    const oldest = state.ids[0];
    if (oldest === undefined || state.loadingOlder) return;
    // aria-disabled, not disabled: a disabled button drops the keyboard focus to the page's start.
    state.loadingOlder = true;
    ui.older.setAttribute('aria-disabled', 'true');
    ui.older.textContent = 'Loading…';
    try {
      const page = await requestJson(messagesUrl({ limit: PAGE_SIZE, before: oldest }));
      const added = addMessages(page, 'older', true);
      // An api that ignores `before` answers the same page again: nothing older to get.
      state.hasOlder = added > 0 && page.length >= PAGE_SIZE;
      ui.older.textContent = 'Load older messages';
    } catch (error) {
      ui.older.textContent = 'Could not load older messages. Try again';
      ui.older.title = error.message;
    } finally {
      state.loadingOlder = false;
      ui.older.removeAttribute('aria-disabled');
      const hadFocus = document.activeElement === ui.older;
      updateOlderButton();
      // The whole history is here and the button goes: focus stays in the log, not lost to the page.
      if (hadFocus && ui.older.hidden) ui.scroller.focus();
    }
  }

  // ---- composing -----------------------------------------------------------------------

  function rememberUsername() {
    try {
      window.localStorage.setItem(USERNAME_KEY, currentUsername());
    } catch {
      // Storage can be off (private modes, policies); the name then lasts this page only.
    }
  }

  function recallUsername() {
    try {
      return window.localStorage.getItem(USERNAME_KEY) || '';
    } catch {
      return '';
    }
  }

  function refreshOwnMarks() {
    const me = currentUsername();
    for (const { message, node } of state.messages.values()) {
      node.classList.toggle('msg-own', message.AuthorUsername !== BOT_NAME && message.AuthorUsername === me);
    }
  }

  // Silent until the limit is near; the api stays the judge of what is too long.
  function updateCounter() {
    // Code points, as the api counts them, not UTF-16 units.
    const length = Array.from(ui.message.value).length;
    const near = length >= MAX_TEXT * 0.9;
    ui.counter.textContent = near ? `${length.toLocaleString()} / ${MAX_TEXT.toLocaleString()}` : '';
    ui.counter.classList.toggle('counter-over', length > MAX_TEXT);
    window.clearTimeout(state.counterTimer);
    state.counterTimer = window.setTimeout(() => speakCounter(length, near), COUNTER_SPEAK_DELAY_MS);
  }

  function speakCounter(length, near) {
    let text = '';
    if (near && length > MAX_TEXT) {
      const over = length - MAX_TEXT;
      text = `You have ${over.toLocaleString()} ${over === 1 ? 'character' : 'characters'} too many`;
    } else if (near) {
      const left = MAX_TEXT - length;
      text = `You have ${left.toLocaleString()} ${left === 1 ? 'character' : 'characters'} remaining`;
    }
    if (ui.counterStatus.textContent !== text) ui.counterStatus.textContent = text;
  }

  async function send(event) {
    event.preventDefault();
    if (state.sending) return;
    if (!state.api) {
      showFormError('Cannot send: this page has no working API_URL (see the message above).');
      return;
    }
    const username = currentUsername();
    const text = ui.message.value;
    if (!username) {
      showFormError('Choose a username first.', ui.username);
      ui.username.focus();
      return;
    }
    if (!text.trim()) {
      ui.message.focus();
      return;
    }
    state.sending = true;
    ui.send.disabled = true;
    ui.form.setAttribute('aria-busy', 'true');
    try {
      const page = await requestJson(state.api.messages, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ AuthorUsername: username, Text: text }),
      });
      clearFormError();
      rememberUsername();
      ui.message.value = '';
      updateCounter();
      if (state.legacy) {
        renderLegacy(page, true, true);
      } else if (page.some((message) => !hasId(message))) {
        // Sent to the original api (it was empty when the page loaded, so nothing told it apart).
        startLegacy(page, true);
        scrollToBottom();
      } else {
        addMessages(page, 'own');
      }
    } catch (error) {
      showFormError(error.message, fieldOfApiError(error.message));
    } finally {
      state.sending = false;
      ui.send.disabled = false;
      ui.form.removeAttribute('aria-busy');
      ui.message.focus();
    }
  }

  function onMessageKeydown(event) {
    // Enter sends; Shift+Enter is a new line; Enter that confirms an IME composition is neither.
    if (event.key !== 'Enter' || event.shiftKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    ui.form.requestSubmit();
  }

  function useExample(event) {
    const button = event.target.closest('.example');
    if (!button) return;
    ui.message.value = button.textContent;
    updateCounter();
    ui.message.focus();
    ui.message.setSelectionRange(ui.message.value.length, ui.message.value.length);
  }

  // ---- start ---------------------------------------------------------------------------------

  function start() {
    ui.username.value = recallUsername();
    if (window.matchMedia(WIDE_SCREEN).matches) ui.help.open = true;

    ui.form.addEventListener('submit', send);
    ui.message.addEventListener('keydown', onMessageKeydown);
    ui.message.addEventListener('input', () => {
      updateCounter();
      if (!ui.formError.hidden) clearFormError();
    });
    ui.username.addEventListener('input', () => {
      rememberUsername();
      refreshOwnMarks();
      if (!ui.formError.hidden) clearFormError();
    });
    ui.scroller.addEventListener('scroll', () => {
      if (isNearBottom()) ui.jump.hidden = true;
    });
    ui.jump.addEventListener('click', () => {
      // The button hides itself: focus moves to the log it scrolled, not to the page's start.
      const hadFocus = document.activeElement === ui.jump;
      scrollToBottom();
      if (hadFocus) ui.scroller.focus();
    });
    ui.older.addEventListener('click', loadOlder);
    ui.help.addEventListener('click', useExample);

    try {
      state.api = resolveApi(readApiUrl());
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      setStatus('unconfigured');
      showBanner(error.message);
      return;
    }
    setStatus('connecting');
    loadLatest();
  }

  start();
})();
