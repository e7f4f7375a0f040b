// Moved to src/common (the edge's fill state uses it too); kept so origin imports resolve.
export { writeFileAtomic, fsyncDir } from '../common/atomic-file.js';
