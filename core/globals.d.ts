// The web-platform globals that both Node and browsers provide, and nothing else: the foundation
// may use these, never a node: module or a DOM type (its tsconfig has no `types`).
declare function setTimeout(fn: () => void, ms?: number): unknown;
declare function clearTimeout(id: unknown): void;
declare function setInterval(fn: () => void, ms?: number): unknown;
declare function clearInterval(id: unknown): void;
declare function btoa(data: string): string;
declare function atob(data: string): string;
declare const performance: { now(): number };
/** WebCrypto: random bytes, and the Ed25519 subset the engine's WebCrypto port uses. */
declare const crypto: {
  getRandomValues<T extends Uint8Array>(array: T): T;
  subtle: {
    sign(algorithm: { name: 'Ed25519' }, key: unknown, data: Uint8Array): Promise<ArrayBuffer>;
    verify(algorithm: { name: 'Ed25519' }, key: unknown, signature: Uint8Array, data: Uint8Array): Promise<boolean>;
    importKey(format: 'raw', keyData: Uint8Array, algorithm: { name: 'Ed25519' }, extractable: boolean, usages: Array<'verify'>): Promise<unknown>;
  };
};
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean });
  decode(input?: Uint8Array | ArrayBuffer): string;
}
interface AbortSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
}
