import { z } from 'zod';
import { Id, WireErrorSchema } from './common.ts';

/**
 * One envelope for every channel (access socket and peer `ctl`):
 *   request      {kind:"req",  id, type, body}
 *   response     {kind:"res",  id, status:"ok", data} | {kind:"res", id, status:"error", error:{code,message}}
 *   notification {kind:"note", type, body}
 * The body is validated against the catalogue entry for `type` after the envelope.
 */
export const MessageType = z.string().regex(/^[a-zA-Z][a-zA-Z.]{0,39}$/, 'a message type such as "sweep.update"');

export const RequestEnvelope = z.strictObject({
  kind: z.literal('req'),
  id: Id,
  type: MessageType,
  body: z.unknown(),
});
export const ResponseEnvelope = z.discriminatedUnion('status', [
  z.strictObject({ kind: z.literal('res'), id: Id, status: z.literal('ok'), data: z.unknown() }),
  z.strictObject({ kind: z.literal('res'), id: Id, status: z.literal('error'), error: WireErrorSchema }),
]);
export const NoteEnvelope = z.strictObject({ kind: z.literal('note'), type: MessageType, body: z.unknown() });

export const Envelope = z.union([RequestEnvelope, ResponseEnvelope, NoteEnvelope]);
export type Envelope = z.infer<typeof Envelope>;
export type RequestEnvelope = z.infer<typeof RequestEnvelope>;
export type ResponseEnvelope = z.infer<typeof ResponseEnvelope>;
export type NoteEnvelope = z.infer<typeof NoteEnvelope>;

/** A catalogue maps request types to their body and result schemas, and note types to their body. */
export interface Catalogue {
  requests: Record<string, { body: z.ZodType; result: z.ZodType }>;
  notes: Record<string, z.ZodType>;
}

export type RequestType<C extends Catalogue> = keyof C['requests'] & string;
export type NoteType<C extends Catalogue> = keyof C['notes'] & string;
export type RequestBody<C extends Catalogue, T extends RequestType<C>> = z.input<C['requests'][T]['body']>;
export type ParsedRequestBody<C extends Catalogue, T extends RequestType<C>> = z.output<C['requests'][T]['body']>;
export type RequestResult<C extends Catalogue, T extends RequestType<C>> = z.output<C['requests'][T]['result']>;
export type NoteBody<C extends Catalogue, T extends NoteType<C>> = z.output<C['notes'][T]>;
