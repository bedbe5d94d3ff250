// The public lookup's page: asks /track/{no} and shows the scans, as text only.
const $ = (s) => document.querySelector(s);

function row(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) {
    const td = document.createElement('td');
    td.textContent = c;
    tr.append(td);
  }
  return tr;
}

async function track(ev) {
  ev.preventDefault();
  const no = $('#track-no').value.trim();
  const out = $('#track-result');
  $('#track-error').textContent = '';
  out.hidden = true;
  const last4 = $('#track-last4').value.trim();
  const r = await fetch(`/track/${encodeURIComponent(no)}${last4 ? `?last4=${encodeURIComponent(last4)}` : ''}`);
  const body = await r.json().catch(() => null);
  if (!r.ok) {
    $('#track-error').textContent = body && body.error ? body.error.message : `HTTP ${r.status}`;
    return;
  }
  const h = document.createElement('h2');
  h.textContent = `${body.waybill_no} · ${body.status}`;
  const table = document.createElement('table');
  table.id = 'track-scans';
  table.append(row(['time', 'event', 'place']));
  for (const s of body.scans) table.append(row([s.at_local, s.event, s.place]));
  const extra = [];
  if (body.recipient) {
    const p = document.createElement('p');
    p.id = 'track-recipient';
    p.textContent = `收件人 · Recipient: ${body.recipient.name}, ${body.recipient.district}`;
    extra.push(p);
  } else if (body.check) {
    const p = document.createElement('p');
    p.className = 'muted';
    p.id = 'track-check';
    p.textContent = { wrong: 'Those digits do not match.', locked: 'Too many tries on this number: try again later.',
      unavailable: 'The recipient\'s details are no longer kept.' }[body.check] || '';
    extra.push(p);
  }
  out.replaceChildren(h, ...extra, table);
  out.hidden = false;
}

document.addEventListener('DOMContentLoaded', () => $('#track-form').addEventListener('submit', track));
