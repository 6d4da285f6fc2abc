/** The few line icons the page draws, inline so they cost no request. */
import { html } from 'htm/preact';

const PATHS = {
  plus: 'M12 5v14M5 12h14',
  close: 'M6 6l12 12M18 6L6 18',
  search: 'M11 4a7 7 0 1 0 0 14 7 7 0 0 0 0-14zM20 20l-4-4',
  pin: 'M9 4h6l-1 6 4 4H6l4-4-1-6zM12 14v6',
  pencil: 'M4 20h4L19 9l-4-4L4 16v4zM14 6l4 4',
  trash: 'M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13',
  sidebar: 'M4 5h16v14H4zM9 5v14',
  menu: 'M4 7h16M4 12h16M4 17h16',
  gear: 'M12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6zM19 12l2-1-2-4-2 1-2-1-1-2h-4l-1 2-2 1-2-1-2 4 2 1v0l-2 1 2 4 2-1 2 1 1 2h4l1-2 2-1 2 1 2-4-2-1z',
  copy: 'M9 9h11v11H9zM5 15H4V4h11v1',
  download: 'M12 4v11M7 10l5 5 5-5M5 20h14',
  upload: 'M12 20V9M7 14l5-5 5 5M5 4h14',
  key: 'M14 10a4 4 0 1 0-1 2.6L20 20M17 17l2-2',
  keyboard: 'M3 7h18v10H3zM7 11h1M11 11h1M15 11h1M8 14h8',
  user: 'M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM4 20a8 8 0 0 1 16 0',
  logout: 'M15 4h4v16h-4M10 8l-4 4 4 4M6 12h10',
  eye: 'M2 12s4-7 10-7 10 7 10 7-4 7-10 7S2 12 2 12zM12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6z',
  back: 'M15 5l-7 7 7 7',
};

/** @param {{name: keyof typeof PATHS, title?: string}} props */
export function Icon({ name, title }) {
  return html`<svg
    viewBox="0 0 24 24"
    fill="none"
    stroke="currentColor"
    stroke-width="1.8"
    stroke-linecap="round"
    stroke-linejoin="round"
    aria-hidden=${title ? undefined : 'true'}
    role=${title ? 'img' : undefined}
  >
    ${title && html`<title>${title}</title>`}
    <path d=${PATHS[name]} />
  </svg>`;
}
