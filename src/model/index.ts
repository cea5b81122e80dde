// alcazar's vocabulary: names, labels, annotations and namespace targeting.
export * from './names.js';
export * from './targeting.js';
