// How one message looks on the page, and how it sounds. Messages are only ever rendered as text.

import { parseStatsReply, renderStatsChart } from './chart.js';

export const BOT_NAME = 'crawler-bot';
const AVATAR_COLORS = 8;
// Consecutive messages of one author within this window share one header.
const GROUP_MS = 5 * 60 * 1000;

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

export function parseDate(value) {
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

// `me`: the name in the username box, whose messages are marked as one's own.
export function renderMessage(message, me) {
  const author = message.AuthorUsername;
  const isBot = author === BOT_NAME;
  const item = document.createElement('li');
  item.className = isBot ? 'msg msg-bot' : 'msg';
  if (!isBot && author === me) item.classList.add('msg-own');

  const avatar = document.createElement('span');
  avatar.className = `avatar ${isBot ? 'avatar-bot' : colorClass(author)}`;
  avatar.setAttribute('aria-hidden', 'true');
  // The bot's avatar is a drawn robot head, with no letter.
  if (!isBot) avatar.textContent = initial(author);

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

  // The bot's /stats numbers, drawn beside its words (which stay as they are).
  const stats = isBot ? parseStatsReply(message.Text) : null;
  if (stats) {
    const answer = document.createElement('div');
    answer.className = 'bot-answer';
    answer.append(text, renderStatsChart(stats));
    body.append(head, answer);
  } else {
    body.append(head, text);
  }
  item.append(avatar, body);
  return item;
}

// What a screen reader says for a new message: its author (the bot said to be one), then its text.
export function spokenMessage(message) {
  const author = message.AuthorUsername === BOT_NAME ? `${BOT_NAME} (bot)` : message.AuthorUsername;
  return `${author}: ${message.Text}`;
}

// Whether `current` continues `previous`'s run (same author, shortly after): it then shares its header.
export function continuesRun(previous, current) {
  const a = parseDate(previous.created_at);
  const b = parseDate(current.created_at);
  return (
    previous.AuthorUsername === current.AuthorUsername && a !== null && b !== null && b - a >= 0 && b - a < GROUP_MS
  );
}

export function isOwn(message, me) {
  return message.AuthorUsername !== BOT_NAME && message.AuthorUsername === me;
}
