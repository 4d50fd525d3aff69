// The two AWS SDK clients the console uses, built from the user's settings. Locally the endpoint is
// this page's origin (`openlookout serve` routes by the SigV4 scope) and dummy credentials do.
import type { LookoutVisionClient } from "@aws-sdk/client-lookoutvision";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { lookoutVisionClient, s3Client, siteSettings, type Settings } from "./clients";
import { parseS3Uri } from "./manifest";

export type { Settings };

const STORE = "openlookout-console-settings"; // sessionStorage: credentials die with the tab

// config.json beside index.html: `openlookout serve` answers it with its artifacts bucket, and
// `make deploy-console` writes the stack's endpoint, region and buckets there (never credentials).
let site: Partial<Settings> = {};

export async function loadSiteConfig(): Promise<void> {
  try {
    const response = await fetch("config.json", { cache: "no-cache" });
    if (response.ok) site = siteSettings((await response.json()) as Record<string, unknown>);
  } catch {
    site = {}; // none, or not JSON: the local defaults
  }
  clients = makeClients(loadSettings());
}

export function defaultSettings(): Settings {
  return {
    endpoint: location.origin,
    region: "us-east-1",
    accessKeyId: "console",
    secretAccessKey: "console",
    sessionToken: "",
    bucket: "openlookout-console",
    artifactsBucket: "",
    apiGateway: false,
    ...site,
  };
}

export function loadSettings(): Settings {
  const saved = sessionStorage.getItem(STORE);
  return saved ? { ...defaultSettings(), ...(JSON.parse(saved) as Partial<Settings>) } : defaultSettings();
}

/** Sign-out: the keys leave the tab's storage; the page reloads with the defaults. */
export function forgetSettings(): void {
  sessionStorage.removeItem(STORE);
}

export function saveSettings(settings: Settings): void {
  sessionStorage.setItem(STORE, JSON.stringify(settings));
  clients = makeClients(settings);
}

function makeClients(s: Settings): { lv: LookoutVisionClient; s3: S3Client; settings: Settings } {
  return { lv: lookoutVisionClient(s), s3: s3Client(s), settings: s };
}

let clients = makeClients(loadSettings());

export function lv(): LookoutVisionClient {
  return clients.lv;
}
export function s3(): S3Client {
  return clients.s3;
}
export function settings(): Settings {
  return clients.settings;
}

/** A GET URL for an image in S3, so <img loading="lazy"> fetches it only when shown. */
export async function imageUrl(uri: string): Promise<string> {
  const { bucket, key } = parseS3Uri(uri);
  return getSignedUrl(clients.s3, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: 3600 });
}

/** An error as a person reads it: the AWS error code and its message. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { name?: string }).name;
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const where = status ? ` (HTTP ${status})` : "";
    if (error.message === "Failed to fetch") return `Cannot reach the service at ${settings().endpoint}: is it running?`;
    return `${code && code !== "Error" ? code + ": " : ""}${error.message || "unknown error"}${where}`;
  }
  return String(error);
}
