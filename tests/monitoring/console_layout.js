// Every layout problem of the page as drawn, as sentences; [] when it reads cleanly (test_console_layout.py).
const problems = [];
const page = document.documentElement;
if (page.scrollWidth > page.clientWidth + 1) problems.push(`page scrolls sideways: ${page.scrollWidth} > ${page.clientWidth}`);
const boxes = '#content h1, #content h2, #content p, #content td, #content th, #content button, #content .readonly, #content li';
for (const el of document.querySelectorAll(boxes)) {
  if (getComputedStyle(el).display === 'inline' || !el.getClientRects().length) continue;
  if (el.scrollWidth > el.clientWidth + 1) problems.push(`text overflows its box: ${el.tagName} "${el.textContent.trim().slice(0, 40)}"`);
}
for (const table of document.querySelectorAll('.console-card table')) {
  const card = table.closest('.console-card').getBoundingClientRect();
  if (table.getBoundingClientRect().right > card.right + 1) problems.push(`table leaves its card: ${table.closest('.console-card').id}`);
}
const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5 && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5;
for (const svg of document.querySelectorAll('svg.console-chart')) {
  const frame = svg.getBoundingClientRect();
  const scale = frame.width / svg.viewBox.baseVal.width;
  const title = svg.querySelector('title').textContent;
  const texts = [...svg.querySelectorAll('text')].map(t => [t, t.getBoundingClientRect()]);
  for (const [t, box] of texts) {
    const px = parseFloat(getComputedStyle(t).fontSize) * scale;
    if (px < 12) problems.push(`chart text under 12 px (${px.toFixed(1)}): "${t.textContent}" in "${title}"`);
    if (box.left < frame.left - 0.5 || box.right > frame.right + 0.5 || box.top < frame.top - 0.5 || box.bottom > frame.bottom + 0.5)
      problems.push(`chart text cut at the edge: "${t.textContent}" in "${title}"`);
  }
  for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++)
    if (overlap(texts[i][1], texts[j][1])) problems.push(`chart labels overlap: "${texts[i][0].textContent}" and "${texts[j][0].textContent}" in "${title}"`);
}
const probe = document.createElement('input');
probe.type = 'submit';
document.body.append(probe);
const admin = getComputedStyle(probe);
for (const button of document.querySelectorAll('#content button')) {
  const style = getComputedStyle(button);
  if (style.backgroundColor !== admin.backgroundColor || style.color !== admin.color)
    problems.push(`button not styled like the admin's: "${button.textContent.trim()}"`);
}
probe.remove();
return problems;
