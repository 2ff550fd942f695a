// The message log: messages in id order (or, from the original api, in the order it lists
// them), grouped into runs, scrolled as a reader expects, and each new one announced once.

import { hasId, isMessage } from './api.js';
import { continuesRun, isOwn, renderMessage, spokenMessage } from './render.js';

// Closer than this to the bottom, the log follows new messages; further up, the user is reading.
const STICKY_PX = 48;
// Announcements already spoken are removed past this many; removals are never read out.
const ANNOUNCER_KEEP = 5;

function sameMessage(a, b) {
  return a.AuthorUsername === b.AuthorUsername && a.Text === b.Text;
}

export class MessageLog {
  // `elements`: {scroller, list, empty, jump, announcer}; `me()`: the name in the username box.
  constructor(elements, me) {
    this.ui = elements;
    this.me = me;
    this.byId = new Map(); // id -> {message, node}
    this.ids = []; // ascending
    this.shownWhole = []; // the original api's {message, node}s, in its order
    elements.scroller.addEventListener('scroll', () => {
      if (this.isNearBottom()) elements.jump.hidden = true;
    });
    elements.jump.addEventListener('click', () => {
      // The button hides itself: focus moves to the log it scrolled, not to the page's start.
      const hadFocus = document.activeElement === elements.jump;
      this.scrollToBottom();
      if (hadFocus) elements.scroller.focus();
    });
  }

  get oldestId() {
    return this.ids[0];
  }

  get lastId() {
    return this.ids.length ? this.ids[this.ids.length - 1] : 0;
  }

  // Add messages in id order, skipping those already shown (the POST answer and the
  // stream both deliver one's own message). `mode`: 'new', 'own' (just sent) or 'older'.
  // `bulk`: a whole page at once (the history, an older page), which is not announced.
  add(list, mode = 'new', bulk = false) {
    const { scroller, list: listNode, jump } = this.ui;
    const follow = mode === 'own' || this.isNearBottom();
    const heightBefore = scroller.scrollHeight;
    const fresh = [];
    let addedAtEnd = false;
    for (const message of list) {
      if (!hasId(message) || !isMessage(message) || this.byId.has(message.id)) continue;
      const index = this.insertionIndex(message.id);
      const node = renderMessage(message, this.me());
      const next = index < this.ids.length ? this.byId.get(this.ids[index]).node : null;
      listNode.insertBefore(node, next);
      this.ids.splice(index, 0, message.id);
      this.byId.set(message.id, { message, node });
      this.regroup(index);
      this.regroup(index + 1);
      fresh.push(message);
      if (index === this.ids.length - 1) addedAtEnd = true;
    }
    this.updateEmpty();
    if (!bulk && mode !== 'older') this.announce(fresh);
    if (mode === 'older') {
      // Keep the messages the user is looking at in place.
      scroller.scrollTop += scroller.scrollHeight - heightBefore;
    } else if (follow) {
      this.scrollToBottom();
    } else if (addedAtEnd) {
      jump.hidden = false;
    }
    return fresh.length;
  }

  // The original api answers its whole history each time: what extends the shown one is new
  // (appended, announced if `speak`); anything else is another history, shown afresh silently.
  showWhole(page, speak = true, own = false) {
    const messages = page.filter(isMessage);
    const shown = this.shownWhole;
    const continues =
      messages.length >= shown.length && shown.every((entry, i) => sameMessage(entry.message, messages[i]));
    if (continues && messages.length === shown.length) return;
    const follow = own || this.isNearBottom();
    const entries = (list) => list.map((message) => ({ message, node: renderMessage(message, this.me()) }));
    if (continues) {
      const fresh = entries(messages.slice(shown.length));
      this.ui.list.append(...fresh.map((entry) => entry.node));
      this.shownWhole = shown.concat(fresh);
      if (speak) this.announce(fresh.map((entry) => entry.message));
    } else {
      this.shownWhole = entries(messages);
      this.ui.list.replaceChildren(...this.shownWhole.map((entry) => entry.node));
    }
    this.updateEmpty();
    if (follow) this.scrollToBottom();
    else if (continues) this.ui.jump.hidden = false;
  }

  clear() {
    this.byId.clear();
    this.ids = [];
    this.shownWhole = [];
    this.ui.list.replaceChildren();
    this.updateEmpty();
  }

  refreshOwnMarks() {
    const me = this.me();
    for (const { message, node } of [...this.byId.values(), ...this.shownWhole]) {
      node.classList.toggle('msg-own', isOwn(message, me));
    }
  }

  isNearBottom() {
    const s = this.ui.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight <= STICKY_PX;
  }

  scrollToBottom() {
    this.ui.scroller.scrollTop = this.ui.scroller.scrollHeight;
    this.ui.jump.hidden = true;
  }

  // Each new message once, politely, through one live region; the log itself stays silent.
  announce(messages) {
    const announcer = this.ui.announcer;
    for (const message of messages) {
      const line = document.createElement('p');
      line.textContent = spokenMessage(message);
      announcer.append(line);
    }
    while (announcer.childElementCount > ANNOUNCER_KEEP) announcer.firstElementChild.remove();
  }

  updateEmpty() {
    this.ui.empty.hidden = this.ids.length > 0 || this.ui.list.childElementCount > 0;
  }

  // Mark a message that continues its predecessor's run: it shares that one's header.
  regroup(index) {
    if (index <= 0 || index >= this.ids.length) return;
    const current = this.byId.get(this.ids[index]);
    const previous = this.byId.get(this.ids[index - 1]);
    current.node.classList.toggle('msg-continued', continuesRun(previous.message, current.message));
  }

  insertionIndex(id) {
    let low = 0;
    let high = this.ids.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.ids[mid] < id) low = mid + 1;
      else high = mid;
    }
    return low;
  }
}
