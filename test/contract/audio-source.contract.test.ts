import t from 'tap';
import { SimulatedToneSource } from '../../drivers/audio/simulated.ts';
import { audioSourceContract } from './audio-source.contract.ts';

audioSourceContract(t, 'SimulatedToneSource', async () => new SimulatedToneSource({ frequencyHz: 440 }));
