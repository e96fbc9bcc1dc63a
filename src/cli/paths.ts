import { fileURLToPath } from "node:url";

/** The package root (the folder holding package.json), from dist/cli/. */
export const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Manifests of the bundled demo models, served when no model is given. */
export const DEMO_MODELS = [
  fileURLToPath(new URL("../../models/credit-demo/manifest.yaml", import.meta.url)),
  fileURLToPath(new URL("../../models/credit-demo-onnx/manifest.yaml", import.meta.url)),
] as const;

/** A first holdout applicant as a decision request for the demo models (the printed curl example). */
export const DEMO_REQUEST = Object.freeze({
  features: Object.freeze({
    Seniority: 9,
    Home: "rent",
    Time: 60,
    Records: false,
    Job: "freelance",
    Expenses: 73,
    Income: 129,
    Assets: 0,
    Debt: 0,
    Amount: 800,
    Price: 846,
  }),
  subject: Object.freeze({ Age: 30, Marital: "married" }),
});
