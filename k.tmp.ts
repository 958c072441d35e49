import { loadOrCreateKeys } from '/work/main/runtime/identity/keys.ts';
import nodeDataChannel from 'node-datachannel';
const k = await loadOrCreateKeys('/tmp/keytest');
console.log(k.dtlsFingerprint, k.signingKeyRaw);
const pc = new nodeDataChannel.PeerConnection('a', { iceServers: [], bindAddress: '127.0.0.1', certificatePemFile: k.dtlsCertFile, keyPemFile: k.dtlsKeyFile } as any);
pc.onLocalDescription((sdp) => { console.log(sdp.split('\n').filter(l=>l.includes('fingerprint')).join()); pc.close(); });
pc.createDataChannel('ctl');
