/** The models this user may use, fetched once and kept in the shared `models` signal. */
import { signal } from '@preact/signals';
import { models } from '../state.js';
import { allowedModels } from '../api/account.js';

/** The server's default model for this user. */
export const defaultModel = signal(/** @type {string|null} */ (null));
let loading = /** @type {Promise<void>|null} */ (null);

export function loadModels() {
  if (!loading) {
    loading = allowedModels()
      .then((answer) => {
        models.value = answer.data.filter((m) => m.kind !== 'completion');
        defaultModel.value = answer.default ?? models.value[0]?.id ?? null;
      })
      .catch(() => {
        loading = null;
      });
  }
  return loading;
}
