// The SDK clients for a set of connection settings. No browser globals here: unit-tested in Node.
import { LookoutVisionClient } from "@aws-sdk/client-lookoutvision";
import { S3Client } from "@aws-sdk/client-s3";

export interface Settings {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  bucket: string; // where uploads, masks and model output go
  artifactsBucket: string; // the service's own bucket: each model's ONNX export (the stack's ArtifactsBucketName)
  apiGateway: boolean; // a deployed stack: sign for execute-api instead of lookoutvision
}

const SITE_KEYS = ["endpoint", "region", "bucket", "artifactsBucket", "apiGateway"] as const;

/** The settings a site's config.json may give: where the service is, never credentials. */
export function siteSettings(config: Record<string, unknown>): Partial<Settings> {
  return Object.fromEntries(SITE_KEYS.filter((key) => key in config).map((key) => [key, config[key]])) as Partial<Settings>;
}

function credentials(s: Settings) {
  return { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey, sessionToken: s.sessionToken || undefined };
}

type Extra = { requestHandler?: unknown };

export function lookoutVisionClient(s: Settings, extra: Extra = {}): LookoutVisionClient {
  const client = new LookoutVisionClient({ region: s.region, endpoint: s.endpoint, credentials: credentials(s), ...(extra as object) });
  if (s.apiGateway) {
    // API Gateway with IAM auth checks an execute-api signature; everything else is unchanged.
    client.middlewareStack.add(
      (next, context) => (args) => {
        // The signer reads the chosen auth option's properties (signingName set from the endpoint rules).
        type Scheme = { httpAuthOption?: { signingProperties?: Record<string, unknown> } };
        const scheme = (context as { __smithy_context?: { selectedHttpAuthScheme?: Scheme } }).__smithy_context?.selectedHttpAuthScheme;
        if (scheme?.httpAuthOption?.signingProperties) scheme.httpAuthOption.signingProperties.signingName = "execute-api";
        return next(args);
      },
      { step: "build", name: "executeApiSigning" } // after the auth scheme is chosen, before signing,
    );
  }
  return client;
}

export function s3Client(s: Settings): S3Client {
  return new S3Client({
    region: s.region,
    endpoint: s.apiGateway ? undefined : s.endpoint, // deployed: the real S3
    forcePathStyle: !s.apiGateway,
    credentials: credentials(s),
    requestChecksumCalculation: "WHEN_REQUIRED", // s3rver knows no flexible checksums
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}
