/** The ONNX engine: ONNX Runtime (onnxruntime-node) behind Warden's {@link ModelEngine} interface. */
export { createOnnxEngine } from "./engine.js";
export { type OnnxModelInfo, readOnnxModelInfo } from "./model-info.js";
