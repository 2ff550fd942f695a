// The form: who is writing, what, the length count, inline errors, and sending with Enter.

const MAX_TEXT = 4000;
const USERNAME_KEY = 'synergychat.username';
// Said to screen readers once typing pauses, not on every key (as GOV.UK's character count).
const COUNTER_SPEAK_DELAY_MS = 1000;

const byId = (id) => document.getElementById(id);

export class Composer {
  // `submit({AuthorUsername, Text})` posts and resolves once the api took it (throws to show
  // an error); `onNameChange()` follows the username box.
  constructor({ submit, onNameChange }) {
    this.submit = submit;
    this.ui = {
      form: byId('composer'),
      error: byId('form-error'),
      username: byId('username'),
      message: byId('message'),
      send: byId('send'),
      counter: byId('counter'),
      counterStatus: byId('counter-status'),
    };
    this.sending = false;
    this.counterTimer = 0;
    const { form, username, message } = this.ui;
    username.value = recallUsername();
    form.addEventListener('submit', (event) => this.send(event));
    message.addEventListener('keydown', (event) => this.onMessageKeydown(event));
    message.addEventListener('input', () => {
      this.updateCounter();
      if (!this.ui.error.hidden) this.clearError();
    });
    username.addEventListener('input', () => {
      rememberUsername(this.username);
      onNameChange();
      if (!this.ui.error.hidden) this.clearError();
    });
  }

  get username() {
    return this.ui.username.value.trim();
  }

  // Put a text in the message box, ready to send (the help's examples).
  use(text) {
    const box = this.ui.message;
    box.value = text;
    this.updateCounter();
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  async send(event) {
    event.preventDefault();
    if (this.sending) return;
    const { form, username, message, send } = this.ui;
    const text = message.value;
    if (!this.username) {
      this.showError('Choose a username first.', username);
      username.focus();
      return;
    }
    if (!text.trim()) {
      message.focus();
      return;
    }
    this.sending = true;
    send.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try {
      await this.submit({ AuthorUsername: this.username, Text: text });
      this.clearError();
      rememberUsername(this.username);
      message.value = '';
      this.updateCounter();
    } catch (error) {
      this.showError(error.message, this.fieldOfApiError(error.message));
    } finally {
      this.sending = false;
      send.disabled = false;
      form.removeAttribute('aria-busy');
      message.focus();
    }
  }

  onMessageKeydown(event) {
    // Enter sends; Shift+Enter is a new line; Enter that confirms an IME composition is neither.
    if (event.key !== 'Enter' || event.shiftKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    this.ui.form.requestSubmit();
  }

  // `field`: the input the error is about, marked invalid and described by the error (GOV.UK's pattern).
  showError(text, field = null) {
    this.clearError();
    this.ui.error.textContent = text;
    this.ui.error.hidden = false;
    if (field) {
      field.setAttribute('aria-invalid', 'true');
      const described = field.getAttribute('aria-describedby');
      field.setAttribute('aria-describedby', described ? `form-error ${described}` : 'form-error');
    }
  }

  clearError() {
    this.ui.error.hidden = true;
    this.ui.error.textContent = '';
    for (const field of [this.ui.username, this.ui.message]) {
      field.removeAttribute('aria-invalid');
      const described = (field.getAttribute('aria-describedby') || '').replace(/\bform-error\b\s*/, '').trim();
      if (described) field.setAttribute('aria-describedby', described);
      else field.removeAttribute('aria-describedby');
    }
  }

  // Our api names the field first in its 4xx errors ("Text must be at most ...").
  fieldOfApiError(text) {
    if (/^AuthorUsername\b/.test(text)) return this.ui.username;
    if (/^Text\b/.test(text)) return this.ui.message;
    return null;
  }

  // Silent until the limit is near; the api stays the judge of what is too long.
  updateCounter() {
    // Code points, as the api counts them, not UTF-16 units.
    const length = Array.from(this.ui.message.value).length;
    const near = length >= MAX_TEXT * 0.9;
    this.ui.counter.textContent = near ? `${length.toLocaleString()} / ${MAX_TEXT.toLocaleString()}` : '';
    this.ui.counter.classList.toggle('counter-over', length > MAX_TEXT);
    window.clearTimeout(this.counterTimer);
    this.counterTimer = window.setTimeout(() => this.speakCounter(length, near), COUNTER_SPEAK_DELAY_MS);
  }

  speakCounter(length, near) {
    let text = '';
    if (near && length > MAX_TEXT) {
      const over = length - MAX_TEXT;
      text = `You have ${over.toLocaleString()} ${over === 1 ? 'character' : 'characters'} too many`;
    } else if (near) {
      const left = MAX_TEXT - length;
      text = `You have ${left.toLocaleString()} ${left === 1 ? 'character' : 'characters'} remaining`;
    }
    if (this.ui.counterStatus.textContent !== text) this.ui.counterStatus.textContent = text;
  }
}

function rememberUsername(name) {
  try {
    window.localStorage.setItem(USERNAME_KEY, name);
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
