// The two AWS SDK clients the console uses, built from the user's settings. Locally the endpoint is
// this page's origin (`openlookout serve` routes by the SigV4 scope) and dummy credentials do.
import { LookoutVisionClient } from "@aws-sdk/client-lookoutvision";
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { parseS3Uri } from "./manifest";

export interface Settings {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  bucket: string; // where uploads, masks and model output go
  apiGateway: boolean; // a deployed stack: sign for execute-api instead of lookoutvision
}

const STORE = "openlookout-console-settings"; // sessionStorage: credentials die with the tab

export function defaultSettings(): Settings {
  return {
    endpoint: location.origin,
    region: "us-east-1",
    accessKeyId: "console",
    secretAccessKey: "console",
    sessionToken: "",
    bucket: "openlookout-console",
    apiGateway: false,
  };
}

export function loadSettings(): Settings {
  const saved = sessionStorage.getItem(STORE);
  return saved ? { ...defaultSettings(), ...(JSON.parse(saved) as Partial<Settings>) } : defaultSettings();
}

export function saveSettings(settings: Settings): void {
  sessionStorage.setItem(STORE, JSON.stringify(settings));
  clients = makeClients(settings);
}

function makeClients(s: Settings): { lv: LookoutVisionClient; s3: S3Client; settings: Settings } {
  const credentials = { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey, sessionToken: s.sessionToken || undefined };
  const lv = new LookoutVisionClient({ region: s.region, endpoint: s.endpoint, credentials });
  if (s.apiGateway) {
    // API Gateway with IAM auth checks an execute-api signature; everything else is unchanged.
    lv.middlewareStack.add(
      (next, context) => (args) => {
        const ctx = context as { signing_service?: string; __smithy_context?: { selectedHttpAuthScheme?: { signingProperties?: Record<string, unknown> } } };
        const props = ctx.__smithy_context?.selectedHttpAuthScheme?.signingProperties;
        if (props) props.signingName = "execute-api";
        return next(args);
      },
      { step: "finalizeRequest", priority: "high", name: "executeApiSigning" },
    );
  }
  const s3Endpoint = s.apiGateway ? undefined : s.endpoint; // deployed: the real S3
  const s3 = new S3Client({
    region: s.region,
    endpoint: s3Endpoint,
    forcePathStyle: !s.apiGateway,
    credentials,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  return { lv, s3, settings: s };
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
