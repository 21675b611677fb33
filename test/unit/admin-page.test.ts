import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_PAGE } from '../../src/admin/page.js';
import { colourOf } from '../../src/admin/views.js';
import { parsePidf } from '../../src/formats/pidf.js';

test('the admin page script parses (its escapes survive the template literal)', () => {
  const script = ADMIN_PAGE.split('<script>')[1]!.split('</script>')[0]!;
  assert.doesNotThrow(() => new Function(script));
  assert.doesNotMatch(ADMIN_PAGE, /innerHTML/, 'values go in as text only');
});

const doc = (basic: string, person = '') =>
  parsePidf(`<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:a@example.test"><tuple id="t"><status><basic>${basic}</basic></status></tuple>${person}</presence>`);

test('colours: grey closed or unknown, green open, red busy, amber away (RFC 4480 activities)', () => {
  assert.equal(colourOf(undefined), 'grey');
  assert.equal(colourOf(doc('closed')), 'grey');
  assert.equal(colourOf(doc('open')), 'green');
  assert.equal(colourOf(doc('open', '<dm:person id="p"><rpid:activities><rpid:on-the-phone/></rpid:activities></dm:person>')), 'red');
  assert.equal(colourOf(doc('open', '<dm:person id="p"><rpid:activities><rpid:away/></rpid:activities></dm:person>')), 'amber');
});
