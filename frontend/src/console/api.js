/**
 * The admin API the console uses: thin wrappers over `request`, so every failure arrives as an
 * `ApiError` with the server's code and message. The console has no other way into the data.
 */
import { request, ApiError } from '../api/core.js';

const A = '/api/v1/admin';
/** @param {string} s */
const enc = (s) => encodeURIComponent(s);
/** @param {Record<string, unknown>} params */
function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export const listUsers = (q = '') => request('GET', `${A}/users${query({ q })}`);
/** @param {{name: string, password?: string, role: string}} body */
export const createUser = (body) => request('POST', `${A}/users`, body);
/** @param {string} name @param {Record<string, unknown>} patch */
export const patchUser = (name, patch) => request('PATCH', `${A}/users/${enc(name)}`, patch);
/** @param {string} name @param {Record<string, number | null>} limits */
export const setUserQuota = (name, limits) => request('PUT', `${A}/users/${enc(name)}/quota`, limits);
/** A CSV of `username,password` lines, sent as it is. @param {string} text */
export async function importUsers(text) {
  const res = await fetch(`${A}/users/import`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { accept: 'application/json', 'content-type': 'text/csv' },
    body: text,
  });
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const e = (body && (body.error || body)) || {};
    throw new ApiError(res.status, e.code || null, e.message || (typeof body?.detail === 'string' ? body.detail : `${res.status}`));
  }
  return body;
}

export const listKeys = () => request('GET', `${A}/keys`);
/** @param {number} id */
export const revokeKey = (id) => request('DELETE', `${A}/keys/${enc(String(id))}`);
/** @param {number} id @param {Record<string, number | null>} limits */
export const setKeyQuota = (id, limits) => request('PUT', `${A}/keys/${enc(String(id))}/quota`, limits);

/** @param {{start: string, end: string, by: string}} range */
export const usageDaily = (range) => request('GET', `${A}/usage/daily${query(range)}`);
/** Where a chart's rows are downloaded as CSV. @param {{start: string, end: string, by: string}} range @param {string} chart */
export const usageCsvUrl = (range, chart) => `${A}/usage/daily.csv${query({ ...range, chart })}`;

/** @param {Record<string, unknown>} filters */
export const auditPage = (filters) => request('GET', `${A}/audit${query(filters)}`);

export const listProviders = () => request('GET', `${A}/providers`);
/** @param {string} name @param {Record<string, unknown>} body */
export const putProvider = (name, body) => request('PUT', `${A}/providers/${enc(name)}`, body);
/** @param {string} name */
export const deleteProvider = (name) => request('DELETE', `${A}/providers/${enc(name)}`);
export const reloadProviders = () => request('POST', `${A}/providers/reload`, {});
export const listModels = () => request('GET', `${A}/models`);
/** @param {string} name @param {Record<string, unknown>} body */
export const putModel = (name, body) => request('PUT', `${A}/models/${enc(name)}`, body);
export const providerHealth = () => request('GET', `${A}/providers/health`);

export const signupMode = () => request('GET', `${A}/signup`);
/** @param {string} mode */
export const setSignupMode = (mode) => request('PUT', `${A}/signup`, { mode });
export const listInvites = () => request('GET', `${A}/invites`);
/** @param {{uses: number, expires_in_hours: number, role: string, note?: string}} body */
export const createInvite = (body) => request('POST', `${A}/invites`, body);
/** @param {number|string} id */
export const deleteInvite = (id) => request('DELETE', `${A}/invites/${enc(String(id))}`);
