// RFC 5262 partial PIDF: the §5 examples (pidf-full version 567, then the patch version 568) read and
// applied; Herald's own patches round-trip; full state whenever a patch cannot say the change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyPatch, diffPidf, parsePidfDiff, renderPidfFull } from '../../src/formats/pidf-diff.js';
import { PidfError, parsePidf, serializePidf } from '../../src/formats/pidf.js';

const FULL = `<?xml version="1.0" encoding="UTF-8"?>
<p:pidf-full xmlns="urn:ietf:params:xml:ns:pidf"
    xmlns:p="urn:ietf:params:xml:ns:pidf-diff"
    xmlns:c="urn:ietf:params:xml:ns:pidf:cipid"
    entity="pres:someone@example.com"
    version="567">
 <tuple id="sg89ae">
  <status><basic>open</basic></status>
  <contact priority="0.8">tel:+09012345678</contact>
 </tuple>
 <tuple id="cg231jcr">
  <status><basic>open</basic></status>
  <contact priority="1.0">im:pep@example.com</contact>
 </tuple>
 <tuple id="r1230d">
  <status><basic>closed</basic></status>
  <contact priority="0.9">sip:pep@example.com</contact>
 </tuple>
 <note xml:lang="en">Full state presence document</note>
 <c:homepage>http://www.example.com/~pep/</c:homepage>
</p:pidf-full>`;

const PATCH = `<?xml version="1.0" encoding="UTF-8"?>
<p:patch xmlns="urn:ietf:params:xml:ns:pidf"
    xmlns:p="urn:ietf:params:xml:ns:pidf-diff"
    version="568">
 <p:add sel="presence/note" pos="before"><tuple id="ert4773">
  <status><basic>open</basic></status>
  <contact priority="0.4">mailto:pep@example.com</contact>
 </tuple></p:add>
 <p:replace sel="*/tuple[@id='r1230d']/status/basic/text()">open</p:replace>
 <p:remove sel="*/tuple[@id='cg231jcr']"/>
 <p:replace sel="*/tuple[@id='sg89ae']/contact/@priority">0.7</p:replace>
</p:patch>`;

test('RFC 5262 example: pidf-full version 567 is the whole document', () => {
  const d = parsePidfDiff(FULL);
  assert.equal(d.kind, 'full');
  if (d.kind !== 'full') return;
  assert.equal(d.version, 567);
  assert.equal(d.document.entity, 'pres:someone@example.com');
  assert.deepEqual(d.document.tuples.map((t) => [t.id, t.basic]), [['sg89ae', 'open'], ['cg231jcr', 'open'], ['r1230d', 'closed']]);
  assert.equal(d.document.notes.length, 1);
  assert.equal(d.document.extensions.length, 1);
});

test('RFC 5262 example: the patch version 568 adds, replaces text and attributes, removes', () => {
  const full = parsePidfDiff(FULL);
  const patch = parsePidfDiff(PATCH);
  assert.equal(patch.kind, 'patch');
  if (full.kind !== 'full' || patch.kind !== 'patch') return;
  assert.equal(patch.version, 568);
  const after = applyPatch(full.document, patch.ops, patch.prefixes);
  assert.deepEqual(after.tuples.map((t) => [t.id, t.basic, t.priority]), [['sg89ae', 'open', 0.7], ['r1230d', 'open', 0.9], ['ert4773', 'open', 0.4]]);
  assert.equal(after.notes.length, 1, 'the note stays');
  // The document patched is not changed.
  assert.deepEqual(full.document.tuples.map((t) => t.id), ['sg89ae', 'cg231jcr', 'r1230d']);
});

test('patches that do not apply are refused, not half-applied', () => {
  const full = parsePidfDiff(FULL);
  if (full.kind !== 'full') return;
  const bad = (ops: string) => {
    const p = parsePidfDiff(`<p:patch xmlns="urn:ietf:params:xml:ns:pidf" xmlns:p="urn:ietf:params:xml:ns:pidf-diff" version="1">${ops}</p:patch>`);
    if (p.kind !== 'patch') throw new Error('not a patch');
    return () => applyPatch(full.document, p.ops, p.prefixes);
  };
  assert.throws(bad(`<p:remove sel="*/tuple[@id='nope']"/>`), PidfError, 'no match');
  assert.throws(bad(`<p:remove sel="*/tuple"/>`), PidfError, 'several matches');
  assert.throws(bad(`<p:remove sel="*/x:tuple"/>`), PidfError, 'undeclared prefix');
  assert.throws(bad(`<p:remove sel="*/tuple[@id='sg89ae']/status"/>`), PidfError, 'the result must be PIDF (a tuple needs a status)');
  assert.throws(bad(`<p:remove sel="*"/>`), PidfError, 'not the root');
  assert.throws(() => parsePidfDiff('<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"/>'), PidfError);
  assert.throws(() => parsePidfDiff('<p:patch xmlns:p="urn:ietf:params:xml:ns:pidf-diff" version="x"/>'), PidfError);
});

const doc = (tuples: string, extra = '') =>
  parsePidf(`<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="sip:alice@example.test">${tuples}${extra}</presence>`);
const tuple = (id: string, basic: string, note = '') => `<tuple id="${id}"><status><basic>${basic}</basic></status>${note ? `<note>${note}</note>` : ''}</tuple>`;

test("Herald's patches: one changed device of ten is one replace, and applying it gives the new document", () => {
  const ids = Array.from({ length: 10 }, (_, i) => `d${i}`);
  const before = doc(ids.map((id) => tuple(id, 'open', `device ${id}`)).join(''), '<dm:person id="p"><dm:note>here</dm:note></dm:person>');
  const after = doc(ids.map((id) => tuple(id, id === 'd3' ? 'closed' : 'open', `device ${id}`)).join(''), '<dm:person id="p"><dm:note>here</dm:note></dm:person>');
  const patch = diffPidf(before, after, 5)!;
  assert.ok(patch);
  assert.ok(Buffer.byteLength(patch) < Buffer.byteLength(serializePidf(after)) / 2, `patch ${patch.length} B vs full ${serializePidf(after).length} B`);
  const p = parsePidfDiff(patch);
  assert.equal(p.kind, 'patch');
  if (p.kind !== 'patch') return;
  assert.equal(p.version, 5);
  assert.deepEqual(p.ops.map((o) => [o.op, o.sel]), [['replace', "*/tuple[@id='d3']"]]);
  assert.equal(serializePidf(applyPatch(before, p.ops, p.prefixes)), serializePidf(after));
});

test("Herald's patches: added and removed tuples and persons round-trip; a changed note means full state", () => {
  const before = doc(tuple('a', 'open') + tuple('b', 'open'), '<dm:person id="p1"><dm:note>x</dm:note></dm:person>');
  const after = doc(tuple('b', 'closed') + tuple('c', 'open'), '<dm:person id="p2"><dm:note>y</dm:note></dm:person>');
  const patch = diffPidf(before, after, 1)!;
  const p = parsePidfDiff(patch);
  if (p.kind !== 'patch') throw new Error('not a patch');
  const got = applyPatch(before, p.ops, p.prefixes);
  assert.deepEqual(got.tuples.map((t) => [t.id, t.basic]), [['b', 'closed'], ['c', 'open']]);
  assert.deepEqual(got.persons.map((x) => x.attrs['id']), ['p2']);
  assert.equal(diffPidf(doc(tuple('a', 'open'), '<note>one</note>'), doc(tuple('a', 'open'), '<note>two</note>'), 2), undefined);
});

test('pidf-full rendering: the PIDF document renamed, with its version, and read back the same', () => {
  const d = doc(tuple('a', 'open'));
  const full = renderPidfFull(d, 0);
  assert.match(full, /<p:pidf-full xmlns:p="urn:ietf:params:xml:ns:pidf-diff" version="0" xmlns="urn:ietf:params:xml:ns:pidf"/);
  const back = parsePidfDiff(full);
  assert.equal(back.kind, 'full');
  if (back.kind === 'full') assert.equal(serializePidf(back.document), serializePidf(d));
});
