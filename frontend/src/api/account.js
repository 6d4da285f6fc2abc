/**
 * The account routes of the native API the page uses: logging out, who am I, the
 * password, one's own API keys and today's usage. Thin wrappers over `request`, so every
 * failure arrives as an `ApiError` with the server's code and message.
 */
import { request } from './core.js';

export function logout() {
  return request('POST', '/api/v1/auth/logout', {});
}

export function whoAmI() {
  return request('GET', '/api/v1/auth/me');
}

export function changePassword(currentPassword, newPassword) {
  return request('POST', '/api/v1/auth/password', {
    current_password: currentPassword,
    new_password: newPassword,
  });
}

export function listKeys() {
  return request('GET', '/api/v1/keys');
}

/** A new key; its secret is in this answer only. @param {string} name */
export function createKey(name) {
  return request('POST', '/api/v1/keys', { name: name || null });
}

/** @param {number} id */
export function revokeKey(id) {
  return request('DELETE', `/api/v1/keys/${encodeURIComponent(id)}`);
}

/** Today's used and remaining requests and tokens. */
export function usageToday() {
  return request('GET', '/api/v1/usage/today');
}

/** The models this user may use. */
export function allowedModels() {
  return request('GET', '/api/v1/models');
}
