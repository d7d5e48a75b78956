// Themes: the accent colours of openheim's terminal UI (green, blue, red,
// white) over a dark or light base that follows the system unless chosen.
// Preferences are not secrets, so they live in localStorage.

export const ACCENTS = ["green", "blue", "red", "white"] as const;
export type Accent = (typeof ACCENTS)[number];
export const SCHEMES = ["system", "dark", "light"] as const;
export type Scheme = (typeof SCHEMES)[number];

export interface Preferences { accent: Accent; scheme: Scheme }

const KEY = "openheim.prefs";

export function loadPreferences(): Preferences {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) ?? "{}") as Partial<Preferences>;
    return {
      accent: ACCENTS.includes(saved.accent as Accent) ? (saved.accent as Accent) : "green",
      scheme: SCHEMES.includes(saved.scheme as Scheme) ? (saved.scheme as Scheme) : "system",
    };
  } catch {
    return { accent: "green", scheme: "system" };
  }
}

export function savePreferences(prefs: Preferences): void {
  try {
    localStorage.setItem(KEY, JSON.stringify(prefs));
  } catch {
    // Storage may be disabled; the choice then lasts for this page only.
  }
  applyPreferences(prefs);
}

/** Sets the theme on the document: `data-accent` and `data-scheme` drive the CSS. */
export function applyPreferences(prefs: Preferences): void {
  const root = document.documentElement;
  root.dataset.accent = prefs.accent;
  if (prefs.scheme === "system") delete root.dataset.scheme;
  else root.dataset.scheme = prefs.scheme;
}
