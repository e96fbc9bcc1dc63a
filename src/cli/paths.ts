import { fileURLToPath } from "node:url";

/** The package root (the folder holding package.json), from dist/cli/. */
export const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Manifests of the bundled demo models, served when no model is given. */
export const DEMO_MODELS = [
  fileURLToPath(new URL("../../models/credit-demo/manifest.yaml", import.meta.url)),
  fileURLToPath(new URL("../../models/credit-demo-onnx/manifest.yaml", import.meta.url)),
] as const;
