// Entry point: applies the saved theme, mounts the app and signs in.

import { render } from "preact";
import { Client } from "./lib/client";
import { applyPreferences } from "./lib/theme";
import { App } from "./ui/App";
import "./styles.css";

const client = new Client();
applyPreferences(client.store.get().prefs);
const root = document.getElementById("app");
if (root) render(<App client={client} />, root);
void client.start();
