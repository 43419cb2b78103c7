import { hsmContract } from '../contract/hsm-contract.js';
import { FakeHsm } from '../support/fake-hsm.js';

hsmContract('in-memory fake', async () => new FakeHsm());
