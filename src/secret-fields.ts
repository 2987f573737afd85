// The names of fields that hold a secret, in one list: the log redacts them, and plans and the
// objects they show print them as "(sensitive)". A test walks every schema for names that look
// secret, so a new secret field cannot be added without landing here (or in NOT_SECRET_FIELDS).

/** Field names whose value is a secret: a private key, a token, a password. */
export const SECRET_FIELDS: readonly string[] = [
  'privateKey',
  'keyPem',
  'key',
  'token',
  'authorization',
  'password',
  'secret',
];

/**
 * Field names that look secret and hold none: where a secret is kept (a file path, shown so that
 * a plan says which file), and the list of AUTH mechanisms a connector offers.
 */
export const NOT_SECRET_FIELDS: readonly string[] = ['keyFile', 'tokenFile', 'authMechanisms'];

const SECRET_PATH = new RegExp(`(^|\\.)(${SECRET_FIELDS.join('|')})$`, 'i');

/** Whether the field at a dotted path ("spec.admin.token") holds a secret; any case. */
export function isSecretField(path: string): boolean {
  return SECRET_PATH.test(path);
}
