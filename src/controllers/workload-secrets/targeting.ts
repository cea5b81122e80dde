// Moved to src/model/targeting.ts; re-exported here for existing imports.
export * from '../../model/targeting.js';
