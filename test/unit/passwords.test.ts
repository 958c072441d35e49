import t from 'tap';
import { ARGON2_PARAMS, hashPassword, verifyPassword, dummyHash } from '../../server/passwords.ts';

void t.test('hashPassword with a password gives an argon2id hash at OWASP parameters', async (t) => {
  const hash = await hashPassword('correct horse battery staple');
  t.match(hash, /^\$argon2id\$v=19\$/);
  t.match(hash, /[$,]m=19456[,$]/);
  t.match(hash, /[$,]t=2[,$]/);
  t.match(hash, /[$,]p=1[,$]/);
  t.equal(ARGON2_PARAMS.memoryCost, 19456);
  t.notOk(hash.includes('correct horse'), 'the hash does not contain the password');
});

void t.test('hashPassword twice with the same password gives different salts', async (t) => {
  t.not(await hashPassword('same'), await hashPassword('same'));
});

void t.test('verifyPassword with the right password is true, with a wrong one false', async (t) => {
  const hash = await hashPassword('s3cret!');
  t.equal(await verifyPassword(hash, 's3cret!'), true);
  t.equal(await verifyPassword(hash, 's3cret'), false);
  t.equal(await verifyPassword(hash, ''), false);
});

void t.test('verifyPassword with a malformed hash is false, not a throw', async (t) => {
  t.equal(await verifyPassword('not-a-hash', 'x'), false);
  t.equal(await verifyPassword(await dummyHash(), 'x'), false);
});

void t.test('hashPassword with an empty or overlong password rejects naming the field', async (t) => {
  await t.rejects(hashPassword(''), { code: 'INVALID_MESSAGE', message: /password: must not be empty/ });
  await t.rejects(hashPassword('x'.repeat(257)), { code: 'INVALID_MESSAGE', message: /at most 256/ });
});
