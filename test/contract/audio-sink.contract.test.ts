import t from 'tap';
import { SimulatedAnalysingSink } from '../../drivers/audio/simulated.ts';
import { audioSinkContract } from './audio-sink.contract.ts';

audioSinkContract(t, 'SimulatedAnalysingSink', async () => new SimulatedAnalysingSink());
