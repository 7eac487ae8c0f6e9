// Dates and times in plain British English. The programme is in UK time
// (the conference's own); chat times are the reader's local time.

const LONDON = 'Europe/London';

const ukTime = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', timeZone: LONDON });
const ukDay = new Intl.DateTimeFormat('en-GB', {
  weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', timeZone: LONDON,
});
const ukDayKey = new Intl.DateTimeFormat('en-CA', {
  year: 'numeric', month: '2-digit', day: '2-digit', timeZone: LONDON,
});
const localTime = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit' });
const localDayTime = new Intl.DateTimeFormat('en-GB', {
  weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit',
});

export const programmeTime = (date) => ukTime.format(date);
export const programmeDay = (date) => ukDay.format(date);
/** YYYY-MM-DD of the UK calendar day: sessions group by the day people live in. */
export const programmeDayKey = (date) => ukDayKey.format(date);

/** A chat time: 14:05, or with the day when it is not today. */
export function clock(ms) {
  const date = new Date(ms);
  const today = new Date();
  return date.toDateString() === today.toDateString()
    ? localTime.format(date) : localDayTime.format(date);
}

export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

/** Shorten for announcements and reply previews, by code points. */
export function shorten(text, max = 120) {
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

/** Server messages are written for logs too ("slow mode: wait 3 s"): start them with a capital. */
export function sentence(text) {
  return text ? `${text[0].toUpperCase()}${text.slice(1)}` : text;
}
